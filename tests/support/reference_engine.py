"""A slow, plain rating engine: the yardstick the property tests hold
kondge_billing.rating.engine to.

No walk, no estimate, no band ends: the band of every billed second is
looked up afresh from that second's own instant (UTC) converted to the
tariff's wall clock, so daylight saving needs no rule of its own: a second
in the repeated hour is read as the local time it shows, and the missing
hour simply never shows. allowed_seconds is the exponential then binary
search on the exact cost. Surcharges are picked here by their own code.

For speed, seconds are looked up a UTC minute at a time when that is the
same thing: the zone's offset is a whole number of minutes and does not
change within the minute (so every second of the minute shows the same
local minute). Otherwise each second is looked up by itself. Never used
outside the tests.
"""

from datetime import datetime, timedelta, timezone
from decimal import Decimal, localcontext
from zoneinfo import ZoneInfo

from kondge_billing.rating.money import ZERO, round_money
from kondge_billing.rating.engine import (Breakdown, RatingContext, Segment, billed_seconds,
                                          day_kind, day_table, discount_for)

SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)


def band_of_instant(ctx: RatingContext, instant: datetime) -> str:
    """The band the wall clock of the tariff shows at `instant`."""
    local = instant.astimezone(ZoneInfo(ctx.timezone))
    minute = local.hour * 60 + local.minute
    for s, e, name in day_table(ctx.bands)[day_kind(ctx, local.date())]:
        if s <= minute < e:
            return name
    raise AssertionError(f"no band at {local}")


def _one_local_minute(ctx, minute_start: datetime) -> bool:
    zone = ZoneInfo(ctx.timezone)
    first = minute_start.astimezone(zone).utcoffset()
    last = (minute_start + MINUTE - timedelta(microseconds=1)).astimezone(zone).utcoffset()
    return first == last and first % MINUTE == timedelta(0)


def _runs(ctx: RatingContext, origin: datetime, upto: int) -> list:
    """[p, q, band]: seconds [p, q) of calls from `origin` (UTC) are in `band`."""
    memo = ctx.memo.setdefault("reference", {})
    runs = memo.setdefault(origin, [])
    q = runs[-1][1] if runs else 0
    while q < upto:
        instant = origin + q * SECOND
        minute_start = instant.replace(second=0, microsecond=0)
        if _one_local_minute(ctx, minute_start):
            n = -((instant - (minute_start + MINUTE)) // SECOND)   # seconds starting in it
        else:
            n = 1
        band = band_of_instant(ctx, instant)
        if runs and runs[-1][2] == band:
            runs[-1][1] = q + n
        else:
            runs.append([q, q + n, band])
        q += n
    return runs


def surcharges_for(ctx: RatingContext) -> tuple:
    def prefixed(prefixes, number):
        return prefixes is None or any((number or "").startswith(p) for p in prefixes)
    return tuple(s for s in ctx.surcharges
                 if (s.categories is None or ctx.category in s.categories)
                 and (s.gateways is None or ctx.gateway in s.gateways)
                 and prefixed(s.access, ctx.access_number) and prefixed(s.callers, ctx.caller))


def _price_seconds(ctx, origin, billed, surcharge, segments) -> Decimal:
    total = ZERO
    for p, q, band in _runs(ctx, origin, billed):
        if p >= billed:
            break
        q = min(q, billed)
        rate = ctx.rate_for(band)
        while p < q:
            i, nxt = rate.step_at(p)
            r = q if nxt is None else min(q, nxt)
            per_minute = rate.steps[i].per_minute
            total += (per_minute + surcharge) * (r - p)
            if segments and segments[-1].band == band and segments[-1].step == i \
                    and segments[-1].per_minute == per_minute:
                segments[-1] = Segment(band, i, segments[-1].start, r, per_minute, surcharge)
            else:
                segments.append(Segment(band, i, p, r, per_minute, surcharge))
            p = r
    return total


def _finish(ctx, total60, percent):
    with localcontext() as c:
        c.prec = 60
        raw = total60 * (100 - percent) / 6000
    return raw, round_money(raw, ctx.decimals, ctx.rounding)


def rate_call(ctx: RatingContext, start: datetime, seconds: int,
              explain: bool = True) -> Breakdown:
    origin = start.astimezone(timezone.utc)
    band0 = band_of_instant(ctx, origin)
    rate = ctx.rate_for(band0)
    billed = billed_seconds(rate, seconds)
    if billed == 0:
        return Breakdown(max(seconds, 0), 0, band0, rate, (), ZERO, False, None, ZERO,
                         round_money(ZERO, ctx.decimals, ctx.rounding))
    picked = surcharges_for(ctx)
    per_minute = sum((s.per_minute for s in picked), ZERO)
    connect = rate.connect + sum((s.connect for s in picked), ZERO)
    segments = []
    total60 = connect * 60 + _price_seconds(ctx, origin, billed, per_minute, segments)
    minimum_applied = total60 < rate.minimum * 60
    if minimum_applied:
        total60 = rate.minimum * 60
    discount = discount_for(ctx, start, band0)
    raw, cost = _finish(ctx, total60, discount.percent if discount else ZERO)
    return Breakdown(seconds, billed, band0, rate, tuple(segments) if explain else (), connect,
                     minimum_applied, discount, raw, cost, picked)


def call_cost(ctx: RatingContext, start: datetime, seconds: int) -> Decimal:
    return rate_call(ctx, start, seconds, explain=False).cost


def allowed_seconds(ctx: RatingContext, start: datetime, balance: Decimal, cap: int) -> int:
    """The plain search: exponential, then binary, on the exact cost."""
    def fits(t: int) -> bool:
        return call_cost(ctx, start, t) <= balance

    if cap <= 0 or not fits(1):
        return 0
    lo, hi = 1, 2
    while hi <= cap and fits(hi):
        lo, hi = hi, hi * 2
    if hi > cap:
        if fits(cap):
            return cap
        hi = cap
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo
