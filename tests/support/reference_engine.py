"""The rating engine as it was before the walk and the estimate (commit 6f12496).

The yardstick the property tests hold kondge_billing.tariffs.engine to:
every band looked up afresh for every call, and allowed_seconds as the
exponential then binary search on the exact cost. Only the pricing path is
kept here (the shared records and day_table come from the engine: they did
not change). Slow on purpose; never used outside the tests.
"""

from datetime import datetime, time, timedelta, timezone
from decimal import Decimal, localcontext
from zoneinfo import ZoneInfo

from kondge_billing.money import ZERO, round_money
from kondge_billing.tariffs.engine import (DEFAULT_BAND, Breakdown, RatingContext, Segment,
                                           billed_seconds, day_kind, day_table, discount_for)

_TABLES: dict = {}


def band_at(ctx: RatingContext, start: datetime, offset: int) -> tuple[str, int]:
    key = (ctx.bands, ctx.timezone)
    if key not in _TABLES:
        _TABLES[key] = (day_table(ctx.bands), ZoneInfo(ctx.timezone))
    table, zone = _TABLES[key]
    instant = start + timedelta(seconds=offset)
    local = instant.astimezone(zone)
    minute = local.hour * 60 + local.minute
    for s, e, name in table[day_kind(ctx, local.date())]:
        if s <= minute < e:
            midnight = datetime.combine(local.date(), time(0), tzinfo=zone)
            boundary = (midnight + timedelta(minutes=e)).astimezone(timezone.utc)
            left = int((boundary - instant.astimezone(timezone.utc)).total_seconds())
            return name, max(left, 1)
    return DEFAULT_BAND, 60


def _price_seconds(ctx, start, billed, rate0, segments) -> Decimal:
    total = ZERO
    p = 0
    while p < billed:
        band, left = band_at(ctx, start, p)
        rate = ctx.rate_for(band) or rate0
        i, nxt = rate.step_at(p)
        q = min(billed, p + left, nxt if nxt is not None else billed)
        per_minute = rate.steps[i].per_minute
        total += per_minute * (q - p)
        if segments is not None:
            if segments and segments[-1].band == band and segments[-1].step == i \
                    and segments[-1].per_minute == per_minute:
                segments[-1] = Segment(band, i, segments[-1].start, q, per_minute)
            else:
                segments.append(Segment(band, i, p, q, per_minute))
        p = q
    return total


def _finish(ctx, total60, percent):
    with localcontext() as c:
        c.prec = 60
        raw = total60 * (100 - percent) / 6000
    return raw, round_money(raw, ctx.decimals, ctx.rounding)


def rate_call(ctx: RatingContext, start: datetime, seconds: int,
              explain: bool = True) -> Breakdown:
    band0, _ = band_at(ctx, start, 0)
    rate = ctx.rate_for(band0)
    billed = billed_seconds(rate, seconds) if rate is not None else 0
    if billed == 0:
        return Breakdown(max(seconds, 0), 0, band0, rate, (), ZERO, False, None, ZERO,
                         round_money(ZERO, ctx.decimals, ctx.rounding))
    segments = [] if explain else None
    total60 = rate.connect * 60 + _price_seconds(ctx, start, billed, rate, segments)
    minimum_applied = total60 < rate.minimum * 60
    if minimum_applied:
        total60 = rate.minimum * 60
    discount = discount_for(ctx, start, band0)
    raw, cost = _finish(ctx, total60, discount.percent if discount else ZERO)
    return Breakdown(seconds, billed, band0, rate, tuple(segments or ()), rate.connect,
                     minimum_applied, discount, raw, cost)


def call_cost(ctx: RatingContext, start: datetime, seconds: int) -> Decimal:
    return rate_call(ctx, start, seconds, explain=False).cost


def allowed_seconds(ctx: RatingContext, start: datetime, balance: Decimal, cap: int) -> int:
    """The old search: exponential, then binary, on the exact cost."""
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
