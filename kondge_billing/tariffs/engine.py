"""The rating engine: pure functions on Decimal. No clock, no database.

A call is priced from a RatingContext (everything one call needs: the rates
of its destination in every time band, the bands, holidays, discounts and
the rounding), the call's start time (timezone-aware) and its duration.

Billed duration (the structure comes from the rate of the band the call
*starts* in):
    the initial block, then units of the increment of the step the unit
    starts in; a unit never crosses a step boundary. A call of T > 0 seconds
    is billed up to the end of the unit holding its last second.
Money:
    every billed second is priced at the per-minute price of the step it
    falls in, under the rate of the time band it falls in (a call crossing
    22:00 pays peak before and off-peak after);
    total = connect + sum(per_minute x seconds) / 60, at least the minimum
    charge, less the discount in force at the start (the highest matching
    percent), then rounded ONCE, in `_finish`, to the currency's decimals
    with the tariff's rounding mode. Intermediate sums are exact (one
    division, done at 60 significant digits).
An unanswered call (T = 0) costs nothing.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, localcontext
from zoneinfo import ZoneInfo

from ..money import ZERO, round_money

DAY_KINDS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun", "holiday")
ALL_BANDS = "*"
DEFAULT_BAND = "all"
MINUTES_PER_DAY = 1440


@dataclass(frozen=True)
class Step:
    """From second `start` of the call on: this price and increment."""

    start: int
    per_minute: Decimal
    increment: int


@dataclass(frozen=True)
class Rate:
    connect: Decimal
    minimum: Decimal
    initial: int
    steps: tuple[Step, ...]

    def step_at(self, second: int) -> tuple[int, int | None]:
        """(index of the step holding `second`, start of the next step or None)."""
        for i in range(len(self.steps) - 1, -1, -1):
            if self.steps[i].start <= second:
                nxt = self.steps[i + 1].start if i + 1 < len(self.steps) else None
                return i, nxt
        return 0, self.steps[1].start if len(self.steps) > 1 else None


@dataclass(frozen=True)
class Band:
    name: str
    days: tuple[str, ...]
    minutes: tuple[tuple[int, int], ...]      # [start, end) minutes of the local day


@dataclass(frozen=True)
class Discount:
    name: str
    percent: Decimal
    categories: tuple[str, ...] | None = None
    bands: tuple[str, ...] | None = None
    start: datetime | None = None             # inclusive
    until: datetime | None = None             # exclusive


@dataclass(frozen=True)
class RatingContext:
    """What one call's price depends on (kondge.rating_context() returns it)."""

    tariff: str
    tariff_id: int | None
    version_id: int | None
    version: int | None
    currency: str
    decimals: int
    rounding: str
    timezone: str
    plan: str
    category: str | None
    destination: str
    prefix: str
    rates: dict                                # band name or "*" -> Rate
    bands: tuple[Band, ...] = ()
    holidays: frozenset = frozenset()
    discounts: tuple[Discount, ...] = ()

    def rate_for(self, band: str) -> Rate | None:
        return self.rates.get(band) or self.rates.get(ALL_BANDS)


@dataclass(frozen=True)
class Segment:
    """A stretch of billed seconds at one price."""

    band: str
    step: int
    start: int
    end: int
    per_minute: Decimal


@dataclass(frozen=True)
class Breakdown:
    """The price of one call and how it came about."""

    seconds: int
    billed: int
    band: str                                  # the band the call starts in
    rate: Rate | None
    segments: tuple[Segment, ...]
    connect: Decimal
    minimum_applied: bool
    discount: Discount | None
    raw: Decimal                               # before rounding
    cost: Decimal


# --- time bands ---------------------------------------------------------------

def day_table(bands: tuple[Band, ...]) -> dict[str, list[tuple[int, int, str]]]:
    """Day kind -> sorted [(start, end, band)] of the local day."""
    if not bands:
        return {kind: [(0, MINUTES_PER_DAY, DEFAULT_BAND)] for kind in DAY_KINDS}
    table: dict[str, list[tuple[int, int, str]]] = {kind: [] for kind in DAY_KINDS}
    for band in bands:
        for kind in band.days:
            table[kind].extend((s, e, band.name) for s, e in band.minutes)
    for kind in table:
        table[kind].sort()
    if not table["holiday"]:
        table["holiday"] = table["sun"]
    return table


def _tables(ctx: RatingContext):
    key = (ctx.bands, ctx.timezone)
    cached = _TABLE_CACHE.get(key)
    if cached is None:
        if len(_TABLE_CACHE) > 256:
            _TABLE_CACHE.clear()
        cached = _TABLE_CACHE[key] = (day_table(ctx.bands), ZoneInfo(ctx.timezone))
    return cached


_TABLE_CACHE: dict = {}


def day_kind(ctx: RatingContext, day: date) -> str:
    return "holiday" if day in ctx.holidays else DAY_KINDS[day.weekday()]


def band_at(ctx: RatingContext, start: datetime, offset: int) -> tuple[str, int]:
    """(band of second `offset` of a call started at `start`, seconds until it changes)."""
    table, zone = _tables(ctx)
    instant = start + timedelta(seconds=offset)
    local = instant.astimezone(zone)
    minute = local.hour * 60 + local.minute
    for s, e, name in table[day_kind(ctx, local.date())]:
        if s <= minute < e:
            midnight = datetime.combine(local.date(), time(0), tzinfo=zone)
            boundary = (midnight + timedelta(minutes=e)).astimezone(timezone.utc)
            left = int((boundary - instant.astimezone(timezone.utc)).total_seconds())
            return name, max(left, 1)
    return DEFAULT_BAND, 60          # a gap (the validator refuses files with one)


# --- billed duration ----------------------------------------------------------

def billed_seconds(rate: Rate, seconds: int) -> int:
    """The initial block, then whole units of the current step's increment."""
    if seconds <= 0:
        return 0
    if seconds <= rate.initial:
        return rate.initial
    p = rate.initial
    while True:
        i, nxt = rate.step_at(p)
        inc = rate.steps[i].increment
        end = p + -(-(seconds - p) // inc) * inc
        if nxt is None or end <= nxt:
            return end
        if seconds <= nxt:
            return nxt
        p = nxt


# --- money ----------------------------------------------------------------------

def discount_for(ctx: RatingContext, start: datetime, band: str) -> Discount | None:
    best = None
    for d in ctx.discounts:
        if d.categories is not None and ctx.category not in d.categories:
            continue
        if d.bands is not None and band not in d.bands:
            continue
        if (d.start is not None and start < d.start) or (d.until is not None and start >= d.until):
            continue
        if best is None or d.percent > best.percent:
            best = d
    return best


def _price_seconds(ctx, start, billed, rate0, segments) -> Decimal:
    """sum(per_minute x seconds) over the billed seconds: exact, no division."""
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


def _finish(ctx: RatingContext, total60: Decimal, percent: Decimal) -> tuple[Decimal, Decimal]:
    """THE rounding: (raw, cost) from 60 x the undiscounted amount.

    One division at 60 significant digits, then round_money with the
    tariff's decimals and mode. Nothing else in the engine rounds.
    """
    with localcontext() as c:
        c.prec = 60
        raw = total60 * (100 - percent) / 6000
    return raw, round_money(raw, ctx.decimals, ctx.rounding)


def rate_call(ctx: RatingContext, start: datetime, seconds: int,
              explain: bool = True) -> Breakdown:
    """The price of a call of `seconds` started at `start`, with its breakdown."""
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
    """What a call of `seconds` talk time started at `start` costs."""
    return rate_call(ctx, start, seconds, explain=False).cost


def allowed_seconds(ctx: RatingContext, start: datetime, balance: Decimal, cap: int) -> int:
    """The largest whole T <= cap with call_cost(T) <= balance (0 if none).

    cost never decreases as T grows, so an exponential then binary search
    on the exact cost function finds T, across band boundaries and
    progressive steps, without estimating anything.
    """
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


def first_block_cost(ctx: RatingContext, start: datetime) -> Decimal:
    return call_cost(ctx, start, 1)
