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

Speed: every price of a call started at `start` comes from one walk of its
seconds (`_Walk`: the stretches of one band and one step), kept in the
context's memo for the latest start, so the grant's search, its cost and
the cost of one second more look the bands up once. allowed_seconds
estimates the answer from the walk's prices and lets the exact cost
function settle it.
"""

import threading
from dataclasses import dataclass, field
from functools import cached_property
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_FLOOR, Decimal, InvalidOperation, localcontext
from zoneinfo import ZoneInfo

from ..money import ZERO, quantum, round_money

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

    @cached_property
    def orderly(self) -> bool:
        """Steps from second 0 on in order, increments >= 1, no negative amount (all
        the schema allows): the longer the call, the more it costs, never less."""
        if self.connect < 0 or self.minimum < 0 or self.initial < 0 or not self.steps \
                or self.steps[0].start != 0:
            return False
        previous = -1
        for step in self.steps:
            if step.start <= previous or step.increment < 1 or step.per_minute < 0:
                return False
            previous = step.start
        return True


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
    # the engine's scratch space for this context: its band tables and the
    # walk of its latest start (a context serves one call, or one re-rating)
    memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

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
    """(day table, zone, cache of band ends) for the context's bands and time zone."""
    cached = ctx.memo.get("tables")
    if cached is None:
        key = (ctx.bands, ctx.timezone)
        cached = _TABLE_CACHE.get(key)
        if cached is None:
            if len(_TABLE_CACHE) > 256:
                _TABLE_CACHE.clear()
            cached = _TABLE_CACHE[key] = (day_table(ctx.bands), ZoneInfo(ctx.timezone), {})
        ctx.memo["tables"] = cached
    return cached


_TABLE_CACHE: dict = {}


def day_kind(ctx: RatingContext, day: date) -> str:
    return "holiday" if day in ctx.holidays else DAY_KINDS[day.weekday()]


def _band_end(ends: dict, zone, day: date, minute: int) -> datetime:
    """Minute `minute` of the local day `day`, in UTC (kept in `ends`)."""
    if len(ends) > 4096:
        ends.clear()
    midnight = datetime.combine(day, time(0), tzinfo=zone)
    end = ends[(day, minute)] = (midnight + timedelta(minutes=minute)).astimezone(timezone.utc)
    return end


def band_at(ctx: RatingContext, start: datetime, offset: int) -> tuple[str, int]:
    """(band of second `offset` of a call started at `start`, seconds until it changes)."""
    table, zone, ends = _tables(ctx)
    instant = start + timedelta(seconds=offset)
    local = instant.astimezone(zone)
    minute = local.hour * 60 + local.minute
    day = local.date()
    for s, e, name in table[day_kind(ctx, day)]:
        if s <= minute < e:
            boundary = ends.get((day, e)) or _band_end(ends, zone, day, e)
            left = int((boundary - instant.astimezone(timezone.utc)).total_seconds())
            return name, max(left, 1)
    return DEFAULT_BAND, 60          # a gap (the validator refuses files with one)


class _Walk:
    """The seconds of calls started at `start`, in stretches of one price.

    Each segment (p, q, band, step, per_minute) covers seconds [p, q): the
    band second p falls in and the step of that band's rate (the start
    band's rate where the band has none) holding it; a segment ends where
    the band or the step changes. These are the stretches every call from
    `start` is priced by, whatever its length: one walk, extended as far as
    the longest call asked about, serves them all. Segments are only ever
    appended (under _EXTENDING), so a list handed out stays true.
    """

    __slots__ = ("start", "band0", "rate0", "discount", "segments")

    def __init__(self, ctx: RatingContext, start: datetime):
        band0, left = band_at(ctx, start, 0)
        self.start, self.band0, self.rate0 = start, band0, ctx.rate_for(band0)
        self.discount = _UNKNOWN                 # looked up when a price needs it
        self.segments = [self._segment(ctx, 0, band0, left)] if self.rate0 is not None else []

    def _segment(self, ctx, p, band, left):
        rate = ctx.rate_for(band) or self.rate0
        i, nxt = rate.step_at(p)
        q = p + left if nxt is None else min(p + left, nxt)
        return p, q, band, i, rate.steps[i].per_minute

    def through(self, ctx: RatingContext, end: int) -> list:
        """The segments, walked at least to second `end` (the start band must have a rate)."""
        segments = self.segments
        if segments[-1][1] < end:
            with _EXTENDING:
                while segments[-1][1] < end:
                    p = segments[-1][1]
                    segments.append(self._segment(ctx, p, *band_at(ctx, self.start, p)))
        return segments

    def discount_of(self, ctx: RatingContext) -> Discount | None:
        if self.discount is _UNKNOWN:
            self.discount = discount_for(ctx, self.start, self.band0)
        return self.discount


_UNKNOWN = object()
_EXTENDING = threading.Lock()


def _walk(ctx: RatingContext, start: datetime) -> _Walk:
    """The walk of calls from `start` (this very datetime: the memo keeps the latest)."""
    walk = ctx.memo.get("walk")
    if walk is None or walk.start is not start:
        walk = ctx.memo["walk"] = _Walk(ctx, start)
    return walk


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


def _last_billed(rate: Rate, seconds: int) -> int:
    """The longest billed duration (a value of billed_seconds) of at most `seconds`, or 0.

    The billed durations are the initial block, then each step's start and
    its units: a call of T seconds is billed the first of them >= T.
    """
    p = rate.initial
    if seconds < max(p, 1):
        return 0
    while True:
        i, nxt = rate.step_at(p)
        if nxt is not None and seconds >= nxt:
            p = nxt
            continue
        inc = rate.steps[i].increment
        return p + (seconds - p) // inc * inc


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


def _price_seconds(ctx, walk: _Walk, billed: int, segments) -> Decimal:
    """sum(per_minute x seconds) over the billed seconds: exact, no division."""
    total = ZERO
    for p, q, band, i, per_minute in walk.through(ctx, billed):
        if p >= billed:
            break
        q = min(q, billed)
        total += per_minute * (q - p)
        if segments is not None:
            if segments and segments[-1].band == band and segments[-1].step == i \
                    and segments[-1].per_minute == per_minute:
                segments[-1] = Segment(band, i, segments[-1].start, q, per_minute)
            else:
                segments.append(Segment(band, i, p, q, per_minute))
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


def _charge60(ctx, walk: _Walk, billed: int, segments) -> tuple[Decimal, bool]:
    """(60 x the undiscounted amount of `billed` seconds, whether the minimum applied)."""
    rate = walk.rate0
    total60 = rate.connect * 60 + _price_seconds(ctx, walk, billed, segments)
    if total60 < rate.minimum * 60:
        return rate.minimum * 60, True
    return total60, False


def rate_call(ctx: RatingContext, start: datetime, seconds: int,
              explain: bool = True) -> Breakdown:
    """The price of a call of `seconds` started at `start`, with its breakdown."""
    walk = _walk(ctx, start)
    rate = walk.rate0
    billed = billed_seconds(rate, seconds) if rate is not None else 0
    if billed == 0:
        return Breakdown(max(seconds, 0), 0, walk.band0, rate, (), ZERO, False, None, ZERO,
                         round_money(ZERO, ctx.decimals, ctx.rounding))
    segments = [] if explain else None
    total60, minimum_applied = _charge60(ctx, walk, billed, segments)
    discount = walk.discount_of(ctx)
    raw, cost = _finish(ctx, total60, discount.percent if discount else ZERO)
    return Breakdown(seconds, billed, walk.band0, rate, tuple(segments or ()), rate.connect,
                     minimum_applied, discount, raw, cost)


def call_cost(ctx: RatingContext, start: datetime, seconds: int) -> Decimal:
    """What a call of `seconds` talk time started at `start` costs (rate_call's cost)."""
    walk = _walk(ctx, start)
    rate = walk.rate0
    billed = billed_seconds(rate, seconds) if rate is not None else 0
    if billed == 0:
        return round_money(ZERO, ctx.decimals, ctx.rounding)
    total60, _ = _charge60(ctx, walk, billed, None)
    discount = walk.discount_of(ctx)
    return _finish(ctx, total60, discount.percent if discount else ZERO)[1]


# --- the longest call a balance pays for ----------------------------------------

def allowed_seconds(ctx: RatingContext, start: datetime, balance: Decimal, cap: int) -> int:
    """The largest whole T <= cap with call_cost(T) <= balance (0 if none).

    The walk's prices give an estimate (_estimate); the exact cost function
    has the last word: the estimate T stands only when call_cost(T) fits
    and call_cost(T + 1) does not (or T is the cap). Otherwise the search
    goes on from it, outwards then by halves, on the exact cost; with no
    estimate (0) that is the exponential then binary search from 1. Cost
    never decreases as T grows, so either way T is the same.
    """
    if cap <= 0:
        return 0
    return _settle(ctx, start, balance, cap, _estimate(ctx, start, balance, cap))


def _settle(ctx, start, balance, cap: int, guess: int) -> int:
    """The largest T <= cap that fits, searched on call_cost from `guess`."""
    def fits(t: int) -> bool:
        return call_cost(ctx, start, t) <= balance

    if guess < 1 or guess > cap:
        if not fits(1):
            return 0
        lo = 1
    elif fits(guess):
        if guess == cap or not fits(guess + 1):
            return guess
        lo = guess + 1
    else:
        return _search_down(fits, guess)
    step = 1
    while True:                                  # lo fits: outwards, doubling
        hi = lo + step
        if hi > cap:
            if fits(cap):
                return cap
            hi = cap
            break
        if not fits(hi):
            break
        lo, step = hi, step * 2
    return _halve(fits, lo, hi)


def _search_down(fits, hi: int) -> int:
    """hi does not fit: the largest T below it that does, or 0."""
    step = 1
    while True:
        lo = hi - step
        if lo < 1:
            if hi == 1 or not fits(1):
                return 0
            lo = 1
            break
        if fits(lo):
            break
        hi, step = lo, step * 2
    return _halve(fits, lo, hi)


def _halve(fits, lo: int, hi: int) -> int:
    """lo fits, hi does not: the last that fits between them."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _estimate(ctx: RatingContext, start: datetime, balance, cap: int) -> int:
    """The longest call the balance pays for, from the walk's prices (0: none or unsure).

    Rounding is monotonic, so "the rounded cost is at most the balance" is
    "60 x the undiscounted amount is at most (or below) a limit" (_limit60).
    The walk says up to which second the amount stays within it; the answer
    is the longest billed duration up to that second. Only for rates whose
    price never falls as a call grows; the exact cost checks it anyway.
    """
    walk = _walk(ctx, start)
    rate = walk.rate0
    if rate is None or not all(r.orderly for r in ctx.rates.values()):
        return 0
    try:
        found = _limit60(ctx, balance, walk.discount_of(ctx))
        if found is None:
            return 0
        limit, strict = found
        within = (lambda x: x < limit) if strict else (lambda x: x <= limit)
        if not within(rate.minimum * 60) or not within(rate.connect * 60):
            return 0
        horizon = None                           # billed_seconds(cap): all of it fits
        total60 = rate.connect * 60
        k = 0
        segments = walk.through(ctx, 1)
        while True:
            if k == len(segments):
                segments = walk.through(ctx, segments[-1][1] + 1)
            p, q, _, _, per_minute = segments[k]
            if q >= cap:
                horizon = horizon or billed_seconds(rate, cap)
                q = min(q, horizon)
            more = total60 + per_minute * (q - p)
            if within(more):
                if q == horizon:
                    return cap
                total60, k = more, k + 1
                continue
            room = limit - total60               # per_minute > 0: `more` grew past the limit
            n = room // per_minute
            if strict and n * per_minute == room:
                n -= 1
            return min(cap, _last_billed(rate, p + int(n)))
    except InvalidOperation:                     # amounts beyond the decimal context
        return 0


_EDGES = {"up": 0, "half-up": Decimal("0.5"), "down": 1}


def _limit60(ctx: RatingContext, balance, discount: Discount | None):
    """(limit, strict): the rounded cost is at most `balance` exactly when 60 x the
    undiscounted amount is at most the limit (below it when strict); None if unsure.

    With B the balance rounded down to the currency's step q: rounding up
    keeps amounts <= B, rounding down those < B + q, half-up those < B + q/2.
    """
    percent = discount.percent if discount else ZERO
    edge = _EDGES.get(ctx.rounding)
    if edge is None or not isinstance(balance, Decimal) or not balance.is_finite() \
            or not 0 <= percent < 100:
        return None
    step = quantum(ctx.decimals)
    top = balance.quantize(step, rounding=ROUND_FLOOR) + step * edge
    if not percent:
        return top * 60, edge != 0
    with localcontext() as c:
        c.prec = 60
        return top * 6000 / (100 - percent), edge != 0


def first_block_cost(ctx: RatingContext, start: datetime) -> Decimal:
    return call_cost(ctx, start, 1)
