"""The rating engine: pure functions on Decimal. No clock, no database.

A call is priced from a RatingContext (everything one call needs: the rates
of its destination in every time band, the bands, holidays, discounts,
surcharges, the call's own facts and the rounding), the call's start time
(timezone-aware) and its duration.

Billed duration (the structure comes from the rate of the band the call
*starts* in):
    the initial block, then units of the increment of the step the unit
    starts in; a unit never crosses a step boundary. A call of T > 0 seconds
    is billed up to the end of the unit holding its last second.
Money:
    every billed second is priced at the per-minute price of the step it
    falls in, under the rate of the time band it falls in (a call crossing
    22:00 pays peak before and off-peak after), plus the per-minute part of
    every surcharge that matches the call;
    total = connect (the rate's and the surcharges') + sum(per_minute x
    seconds) / 60, at least the minimum charge, less the discount in force
    at the start (the highest matching percent) -- surcharges are part of
    the price the minimum and the discount apply to -- then rounded ONCE,
    in `_finish`, to the currency's decimals with the tariff's rounding
    mode. Intermediate sums are exact (one division, done at 60 significant
    digits).
An unanswered call (T = 0) costs nothing, surcharges included.

Time bands are read on the tariff's wall clock, second by second: a second
is priced by the band its own local time (and local date: weekday,
holiday) falls in. The engine never does arithmetic on wall-clock times:
every instant is UTC, and a band lasts until a real instant, the earlier of
its end on the local clock (converted with the UTC offset in force) and the
next change of that offset. So where the clocks go forward a band ending
inside the missing hour ends when the clocks jump, and in the repeated hour
the bands of that hour come round twice.

Limits: a context the engine cannot price exactly and quickly (an amount
above MAX_AMOUNT or with more than MAX_PLACES decimals, a block or step
longer than MAX_BLOCK, too many steps, bands, discounts or surcharges, a
band without a rate, a day not covered by the bands, a call longer than
MAX_SECONDS, an unknown time zone, a start without a time zone, a balance
that is not a finite Decimal) raises RatingError, the one exception of the
public functions; they never hang and never return a guess. The tariff
file reader refuses the same values in a file (tariff_file.py).

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
from decimal import ROUND_FLOOR, Context, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from .money import ROUNDING_MODES, ZERO, quantum, round_money

DAY_KINDS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun", "holiday")
ALL_BANDS = "*"
DEFAULT_BAND = "all"
MINUTES_PER_DAY = 1440

# --- limits (tariff_file.py refuses files beyond them; the engine, contexts) ---
MAX_AMOUNT = Decimal(10) ** 6      # a per-minute price, connect or minimum charge, surcharge
MAX_PLACES = 8                     # decimals of an amount or a discount percent
MAX_BLOCK = 86400                  # seconds of an initial block, an increment, a step
MAX_STEPS = 32                     # steps of one rate
MAX_BANDS = 24                     # time bands of a tariff
MAX_DAY_RANGES = 48                # stretches of one band or another on one day kind
MAX_DISCOUNTS = 32
MAX_SURCHARGES = 16
MAX_SECONDS = 10 ** 7              # the longest call priced or granted (about 115 days)

_PLACES = quantum(MAX_PLACES)
_PREC60 = Context(prec=60)         # the one division of a price, and _limit60's
_SECOND = timedelta(seconds=1)
_TICK = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class RatingError(ValueError):
    """A call the engine cannot price exactly: its context, start, duration or
    balance is outside the engine's limits (the message says which)."""


def amount_problem(value, most: Decimal = MAX_AMOUNT) -> str | None:
    """Why `value` is not an amount the engine prices exactly, or None."""
    if not isinstance(value, Decimal) or not value.is_finite():
        return f"{value!r} is not a finite Decimal"
    if value < 0:
        return f"{value} is negative"
    if value > most:
        return f"{value} is above {most}"
    if value != value.quantize(_PLACES):
        return f"{value} has more than {MAX_PLACES} decimals"
    return None


def _whole(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _names_problem(what: str, names) -> str | None:
    if names is not None and (not isinstance(names, tuple)
                              or not all(isinstance(n, str) for n in names)):
        return f"{what}: {names!r} is not a tuple of names"
    return None


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
    def problem(self) -> str | None:
        """Why the engine cannot price with this rate, or None (then the longer
        the call, the more it costs, never less)."""
        for what, value in (("connect", self.connect), ("minimum", self.minimum)):
            found = amount_problem(value)
            if found:
                return f"{what}: {found}"
        if not _whole(self.initial, 0, MAX_BLOCK):
            return f"initial: {self.initial!r} is not a whole number from 0 to {MAX_BLOCK}"
        if not isinstance(self.steps, tuple) or not 1 <= len(self.steps) <= MAX_STEPS:
            return f"steps: from 1 to {MAX_STEPS} steps, not {self.steps!r}"
        previous = None
        for n, step in enumerate(self.steps, 1):
            if not isinstance(step, Step):
                return f"step {n}: {step!r} is not a Step"
            found = amount_problem(step.per_minute)
            if found:
                return f"step {n}: per_minute: {found}"
            if not _whole(step.increment, 1, MAX_BLOCK):
                return f"step {n}: increment {step.increment!r} is not from 1 to {MAX_BLOCK}"
            if previous is None:
                if step.start != 0 or not _whole(step.start, 0, 0):
                    return f"step 1 starts at second {step.start!r}, not 0"
            elif not _whole(step.start, previous + 1, previous + MAX_BLOCK):
                return (f"step {n} starts at second {step.start!r}: not 1 to {MAX_BLOCK} "
                        f"seconds after step {n - 1}")
            previous = step.start
        return None


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

    @cached_property
    def problem(self) -> str | None:
        found = amount_problem(self.percent, Decimal(100))
        if found:
            return f"discount {self.name}: percent: {found}"
        for what, when in (("from", self.start), ("until", self.until)):
            if when is not None and (not isinstance(when, datetime) or when.utcoffset() is None):
                return f"discount {self.name}: {what}: {when!r} is not a time with its zone"
        return (_names_problem(f"discount {self.name}: categories", self.categories)
                or _names_problem(f"discount {self.name}: bands", self.bands))


@dataclass(frozen=True)
class Surcharge:
    """More money for every call its selectors all match (None: any call).

    `per_minute` is added to the per-minute price of every billed second of
    the call, `connect` once to an answered call's connect charge. Every
    matching surcharge is added.
    """

    name: str
    per_minute: Decimal = ZERO
    connect: Decimal = ZERO
    access: tuple[str, ...] | None = None      # prefixes of the access number dialled
    callers: tuple[str, ...] | None = None     # prefixes of the caller's number
    gateways: tuple[str, ...] | None = None    # gateway names
    categories: tuple[str, ...] | None = None  # card categories

    def applies_to(self, ctx: "RatingContext") -> bool:
        return ((self.access is None or _prefixed(self.access, ctx.access_number))
                and (self.callers is None or _prefixed(self.callers, ctx.caller))
                and (self.gateways is None or ctx.gateway in self.gateways)
                and (self.categories is None or ctx.category in self.categories))

    @cached_property
    def problem(self) -> str | None:
        for what, value in (("per_minute", self.per_minute), ("connect", self.connect)):
            found = amount_problem(value)
            if found:
                return f"surcharge {self.name}: {what}: {found}"
        for what in ("access", "callers", "gateways", "categories"):
            found = _names_problem(f"surcharge {self.name}: {what}", getattr(self, what))
            if found:
                return found
        return None


def _prefixed(prefixes, number) -> bool:
    return prefixes is None or (number is not None and any(number.startswith(p)
                                                           for p in prefixes))


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
    surcharges: tuple[Surcharge, ...] = ()     # the version's; the engine picks the matching
    access_number: str | None = None           # the call's facts surcharges select by
    caller: str | None = None
    gateway: str | None = None                 # the gateway's name
    # the engine's scratch space for this context: its checks, band tables and
    # the walk of its latest start (a context serves one call, or one re-rating)
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
    per_minute: Decimal                        # the rate's (its step's) price
    surcharge: Decimal = ZERO                  # per minute, the matching surcharges'


@dataclass(frozen=True)
class Breakdown:
    """The price of one call and how it came about."""

    seconds: int
    billed: int
    band: str                                  # the band the call starts in
    rate: Rate | None
    segments: tuple[Segment, ...]
    connect: Decimal                           # the rate's and the surcharges' connect charges
    minimum_applied: bool
    discount: Discount | None
    raw: Decimal                               # before rounding
    cost: Decimal
    surcharges: tuple[Surcharge, ...] = ()     # those added to this call


# --- checks -----------------------------------------------------------------------

class _Tables:
    """A context's bands and time zone, ready: the day table, the zone, the band
    names in use, and the cache of stretch ends (real instants, UTC)."""

    __slots__ = ("days", "zone", "names", "holiday_covered", "ends", "plain")

    def __init__(self, bands, zone_name):
        self.zone = _zone(zone_name)
        self.days = day_table(_checked_bands(bands))
        self.names = frozenset(name for ranges in self.days.values() for _, _, name in ranges)
        self.holiday_covered = True
        for kind in DAY_KINDS:
            problem = _tiling_problem(self.days[kind])
            if problem and kind == "holiday":
                self.holiday_covered = False      # a problem only where holidays are listed
            elif problem:
                raise RatingError(f"bands on {kind}: {problem}")
        self.ends: dict = {}
        self.plain = _Checked(self)               # a checked context without surcharges


def _zone(name) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, TypeError, KeyError) as exc:     # ZoneInfoNotFoundError is a KeyError
        raise RatingError(f"unknown time zone {name!r}") from exc


def _checked_bands(bands) -> tuple:
    if not isinstance(bands, tuple) or len(bands) > MAX_BANDS:
        raise RatingError(f"bands: at most {MAX_BANDS} bands in a tuple")
    for band in bands:
        if not isinstance(band, Band) or not isinstance(band.name, str) \
                or not isinstance(band.days, tuple) \
                or not all(d in DAY_KINDS for d in band.days) \
                or not isinstance(band.minutes, tuple) \
                or not all(isinstance(m, tuple) and len(m) == 2 and _whole(m[0], 0, 1439)
                           and _whole(m[1], m[0] + 1, MINUTES_PER_DAY) for m in band.minutes):
            raise RatingError(f"band {band!r}: days and [start, end) minutes of the day")
    return bands


def _tiling_problem(ranges) -> str | None:
    """Why these [start, end) minutes do not cover the day once each, or None."""
    if len(ranges) > MAX_DAY_RANGES:
        return f"more than {MAX_DAY_RANGES} stretches"
    minute = 0
    for s, e, _ in ranges:
        if s != minute:
            return f"minute {min(s, minute)} is in no band or in two"
        minute = e
    return None if minute == MINUTES_PER_DAY else f"minute {minute} is in no band"


def _tables(ctx: RatingContext) -> _Tables:
    """The context's band tables (one per bands and time zone, shared).

    The codec hands every call of a tariff version the very same bands
    tuple, so the tables are found by its identity first (_LATEST), and by
    its value only when that misses."""
    bands, zone = ctx.bands, ctx.timezone
    latest = _LATEST.get(id(bands))
    if latest is not None and latest[0] is bands and latest[1] == zone:
        return latest[2]
    found = _tables_by_value(bands, zone)
    if len(_LATEST) > 64:
        _LATEST.clear()
    _LATEST[id(bands)] = (bands, zone, found)      # holds `bands`: its id stays its own
    return found


def _tables_by_value(bands, zone) -> _Tables:
    key = (bands, zone)
    try:
        cached = _TABLE_CACHE.get(key)
    except TypeError:
        raise RatingError("bands and time zone must be a tuple of Band and a name") from None
    if cached is None:
        if len(_TABLE_CACHE) > 256:
            _TABLE_CACHE.clear()
        cached = _TABLE_CACHE[key] = _Tables(*key)
    return cached


_TABLE_CACHE: dict = {}
_LATEST: dict = {}


class _Checked:
    """A context the engine can price: its tables and its call's surcharges."""

    __slots__ = ("tables", "surcharges", "per_minute", "connect")

    def __init__(self, tables, surcharges=(), per_minute=ZERO, connect=ZERO):
        self.tables, self.surcharges = tables, surcharges
        self.per_minute, self.connect = per_minute, connect


def _checked(ctx: RatingContext) -> _Checked:
    """The context, checked once (RatingError if the engine cannot price with it)."""
    found = ctx.memo.get("checked")
    if found is None:
        found = ctx.memo["checked"] = _check(ctx)
    return found


def _check(ctx: RatingContext) -> _Checked:
    if ctx.decimals.__class__ is not int or not 0 <= ctx.decimals <= MAX_PLACES:
        raise RatingError(f"decimals: {ctx.decimals!r} is not from 0 to {MAX_PLACES}")
    if ctx.rounding.__class__ is not str or ctx.rounding not in ROUNDING_MODES:
        raise RatingError(f"rounding: {ctx.rounding!r} is not one of "
                          f"{', '.join(ROUNDING_MODES)}")
    tables = _tables(ctx)
    rates = ctx.rates
    if rates.__class__ is not dict or not rates:
        raise RatingError("no rates")
    for band, rate in rates.items():
        if rate.__class__ is not Rate:
            raise RatingError(f"rate of band {band!r}: {rate!r} is not a Rate")
        if rate.problem:
            raise RatingError(f"rate of band {band}: {rate.problem}")
    if ALL_BANDS not in rates:
        for name in tables.names:
            if name not in rates:
                raise RatingError(f"no rate for band {name} (and none for all bands)")
    if ctx.holidays:
        _check_holidays(ctx.holidays)
        if not tables.holiday_covered:
            raise RatingError("holidays are listed but the bands do not cover the day holiday")
    if ctx.discounts:
        _check_all(ctx.discounts, Discount, MAX_DISCOUNTS, "discounts")
    surcharges = ctx.surcharges
    if not surcharges:
        return tables.plain
    for fact in (ctx.category, ctx.access_number, ctx.caller, ctx.gateway):
        if fact is not None and fact.__class__ is not str:
            raise RatingError(f"the call's category, access number, caller and gateway are "
                              f"text or None, not {fact!r}")
    _check_all(surcharges, Surcharge, MAX_SURCHARGES, "surcharges")
    applied = [s for s in surcharges if s.applies_to(ctx)]
    if not applied:
        return tables.plain
    return _Checked(tables, tuple(applied), sum((s.per_minute for s in applied), ZERO),
                    sum((s.connect for s in applied), ZERO))


def _check_all(items, kind, most: int, what: str):
    """Discounts or surcharges the engine can price with (each tuple checked once:
    the codec hands every call of a version the same one)."""
    if _CHECKED_TUPLES.get(id(items)) is items:
        return
    if items.__class__ is not tuple or len(items) > most:
        raise RatingError(f"{what}: at most {most}, in a tuple")
    for item in items:
        if item.__class__ is not kind:
            raise RatingError(f"{what}: {item!r} is not a {kind.__name__}")
        if item.problem:
            raise RatingError(item.problem)
    if len(_CHECKED_TUPLES) > 256:
        _CHECKED_TUPLES.clear()
    _CHECKED_TUPLES[id(items)] = items           # holds `items`: its id stays its own


_CHECKED_TUPLES: dict = {}


def _check_holidays(holidays):
    """A frozenset of dates (checked once, like the tuples)."""
    if _CHECKED_TUPLES.get(id(holidays)) is holidays:
        return
    if holidays.__class__ is not frozenset or any(d.__class__ is not date for d in holidays):
        raise RatingError(f"holidays: {holidays!r} is not a frozenset of dates")
    _CHECKED_TUPLES[id(holidays)] = holidays


def _utc(start) -> datetime:
    if not isinstance(start, datetime) or start.utcoffset() is None:
        raise RatingError(f"a call's start must be a datetime with its time zone, not {start!r}")
    return start if start.tzinfo is timezone.utc else start.astimezone(timezone.utc)


def _refuse_seconds(seconds):
    if not isinstance(seconds, int) or seconds > MAX_SECONDS:
        raise RatingError(f"a call of {seconds!r} s: whole seconds, at most {MAX_SECONDS}")


# --- time bands -----------------------------------------------------------------

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


def day_kind(ctx: RatingContext, day: date) -> str:
    return "holiday" if day in ctx.holidays else DAY_KINDS[day.weekday()]


def _band_from(ctx: RatingContext, tables: _Tables, origin: datetime,
               offset: int) -> tuple[str, int]:
    """(band of second `offset` after the UTC instant `origin`, seconds until it may change).

    The band is the one the second's local time falls in; it lasts until the
    earlier of two real instants: its end on the local clock at the UTC
    offset in force now, and the next change of that offset.
    """
    instant = origin + timedelta(seconds=offset) if offset else origin
    local = instant.astimezone(tables.zone)
    shift = local.utcoffset()
    day = local.date()
    minute = local.hour * 60 + local.minute
    kind = "holiday" if day in ctx.holidays else DAY_KINDS[day.weekday()]
    for s, e, name in tables.days[kind]:
        if s <= minute < e:
            end = tables.ends.get((day, e, shift))
            if end is None:
                end = _stretch_end(tables, day, e, shift, instant)
            return name, -((instant - end) // _SECOND)        # seconds starting before `end`
    raise RatingError(f"no band covers {local.isoformat()}")   # the tables are checked: never


def _stretch_end(tables: _Tables, day: date, e: int, shift: timedelta,
                 instant: datetime) -> datetime:
    """When a band that `instant` (on local `day`, at UTC offset `shift`) is in ends:
    minute `e` of the day at that offset, or the offset's change if sooner.

    The same for every instant of that day and offset (kept in tables.ends):
    within a day an offset holds for one unbroken stretch, whose end is the
    change. (That, and checking the offset only at the edge, rest on no zone
    changing its offset and back within a day: in the tz database since 1970
    the shortest such return takes a week.)
    """
    ends = tables.ends
    if len(ends) > 4096:
        ends.clear()
    edge = (datetime.combine(day, time(0)) + timedelta(minutes=e) - shift).replace(
        tzinfo=timezone.utc)
    if _offset(tables.zone, edge - _TICK) != shift:
        edge = _offset_change(tables.zone, instant, edge - _TICK, shift)
    ends[(day, e, shift)] = edge
    return edge


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    return instant.astimezone(zone).utcoffset()


def _offset_change(zone: ZoneInfo, before: datetime, after: datetime,
                   shift: timedelta) -> datetime:
    """The first whole second after `before` (offset `shift`) at which the zone's
    offset is no longer `shift`, given that at `after` it is not (the zone
    changes offsets on whole seconds)."""
    lo, hi = (before - _EPOCH) // _SECOND, (after - _EPOCH) // _SECOND
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(zone, _EPOCH + timedelta(seconds=mid)) == shift:
            lo = mid
        else:
            hi = mid
    return _EPOCH + timedelta(seconds=hi)


def band_at(ctx: RatingContext, start: datetime, offset: int) -> tuple[str, int]:
    """(band of second `offset` of a call started at `start`, seconds until it may change)."""
    return _band_from(ctx, _tables(ctx), _utc(start), offset)


class _Walk:
    """The seconds of calls started at `start`, in stretches of one price.

    Each segment (p, q, band, step, per_minute) covers seconds [p, q): the
    band second p falls in and the step of that band's rate holding it; a
    segment ends where the band or the step may change. These are the
    stretches every call from `start` is priced by, whatever its length:
    one walk, extended as far as the longest call asked about, serves them
    all. Segments are only ever appended (under _EXTENDING), so a list
    handed out stays true. The surcharges' per-minute part is the same for
    every second of a call, so it is added to the total, not to segments.
    """

    __slots__ = ("start", "origin", "checked", "band0", "rate0", "discount", "segments")

    def __init__(self, ctx: RatingContext, start: datetime):
        self.checked = checked = _checked(ctx)
        self.start, self.origin = start, _utc(start)
        band0, left = _band_from(ctx, checked.tables, self.origin, 0)
        self.band0, self.rate0 = band0, ctx.rate_for(band0)
        self.discount = _UNKNOWN                 # looked up when a price needs it
        self.segments = [self._segment(ctx, 0, band0, left, self.rate0)]

    @staticmethod
    def _segment(ctx, p, band, left, rate=None):
        rate = rate or ctx.rate_for(band)        # checked: every band has one
        i, nxt = rate.step_at(p)
        q = p + left if nxt is None else min(p + left, nxt)
        return p, q, band, i, rate.steps[i].per_minute

    def through(self, ctx: RatingContext, end: int) -> list:
        """The segments, walked at least to second `end`."""
        segments = self.segments
        if segments[-1][1] < end:
            tables = self.checked.tables
            with _EXTENDING:
                while segments[-1][1] < end:
                    p = segments[-1][1]
                    segments.append(self._segment(ctx, p, *_band_from(ctx, tables,
                                                                      self.origin, p)))
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


def surcharges_for(ctx: RatingContext) -> tuple[Surcharge, ...]:
    """The surcharges added to this context's call (every one that matches it)."""
    return _checked(ctx).surcharges


def _price_seconds(ctx, walk: _Walk, billed: int, segments) -> Decimal:
    """sum(per_minute x seconds) over the billed seconds, surcharges included:
    exact, no division."""
    total = ZERO
    extra = walk.checked.per_minute
    for p, q, band, i, per_minute in walk.through(ctx, billed):
        if p >= billed:
            break
        q = min(q, billed)
        total += per_minute * (q - p)
        if segments is not None:
            if segments and segments[-1].band == band and segments[-1].step == i \
                    and segments[-1].per_minute == per_minute:
                segments[-1] = Segment(band, i, segments[-1].start, q, per_minute, extra)
            else:
                segments.append(Segment(band, i, p, q, per_minute, extra))
    return total + extra * billed if extra else total


def _finish(ctx: RatingContext, total60: Decimal, percent: Decimal) -> tuple[Decimal, Decimal]:
    """THE rounding: (raw, cost) from 60 x the undiscounted amount.

    One division at 60 significant digits, then round_money with the
    tariff's decimals and mode. Nothing else in the engine rounds.
    """
    raw = _PREC60.divide(_PREC60.multiply(total60, 100 - percent), 6000)
    return raw, round_money(raw, ctx.decimals, ctx.rounding)


def _connect(walk: _Walk) -> Decimal:
    """The connect charge of an answered call: the rate's and the surcharges'."""
    extra = walk.checked.connect
    return walk.rate0.connect + extra if extra else walk.rate0.connect


def _charge60(ctx, walk: _Walk, billed: int, segments, connect) -> tuple[Decimal, bool]:
    """(60 x the undiscounted amount of `billed` seconds, whether the minimum applied)."""
    total60 = connect * 60 + _price_seconds(ctx, walk, billed, segments)
    minimum = walk.rate0.minimum
    if total60 < minimum * 60:
        return minimum * 60, True
    return total60, False


def rate_call(ctx: RatingContext, start: datetime, seconds: int,
              explain: bool = True) -> Breakdown:
    """The price of a call of `seconds` started at `start`, with its breakdown."""
    if seconds.__class__ is not int or seconds > MAX_SECONDS:
        _refuse_seconds(seconds)
    try:
        return _rate_call(ctx, start, seconds, explain)
    except ArithmeticError as exc:
        raise RatingError(f"cannot price this call: {exc!r}") from exc


def _rate_call(ctx, start, seconds, explain) -> Breakdown:
    walk = _walk(ctx, start)
    rate = walk.rate0
    billed = billed_seconds(rate, seconds)
    if billed == 0:
        return Breakdown(max(seconds, 0), 0, walk.band0, rate, (), ZERO, False, None, ZERO,
                         round_money(ZERO, ctx.decimals, ctx.rounding))
    segments = [] if explain else None
    connect = _connect(walk)
    total60, minimum_applied = _charge60(ctx, walk, billed, segments, connect)
    discount = walk.discount_of(ctx)
    raw, cost = _finish(ctx, total60, discount.percent if discount else ZERO)
    return Breakdown(seconds, billed, walk.band0, rate, tuple(segments or ()), connect,
                     minimum_applied, discount, raw, cost, walk.checked.surcharges)


def call_cost(ctx: RatingContext, start: datetime, seconds: int) -> Decimal:
    """What a call of `seconds` talk time started at `start` costs (rate_call's cost)."""
    if seconds.__class__ is not int or seconds > MAX_SECONDS:
        _refuse_seconds(seconds)
    try:
        return _cost(ctx, start, seconds)
    except ArithmeticError as exc:
        raise RatingError(f"cannot price this call: {exc!r}") from exc


def _cost(ctx: RatingContext, start: datetime, seconds: int) -> Decimal:
    walk = _walk(ctx, start)
    billed = billed_seconds(walk.rate0, seconds)
    if billed == 0:
        return round_money(ZERO, ctx.decimals, ctx.rounding)
    total60, _ = _charge60(ctx, walk, billed, None, _connect(walk))
    discount = walk.discount_of(ctx)
    return _finish(ctx, total60, discount.percent if discount else ZERO)[1]


# --- the longest call a balance pays for ----------------------------------------

def allowed_seconds(ctx: RatingContext, start: datetime, balance: Decimal, cap: int) -> int:
    """The largest whole T <= cap (and <= MAX_SECONDS) with call_cost(T) <= balance
    (0 if none).

    The walk's prices give an estimate (_estimate); the exact cost function
    has the last word: the estimate T stands only when call_cost(T) fits
    and call_cost(T + 1) does not (or T is the cap). Otherwise the search
    goes on from it, outwards then by halves, on the exact cost; with no
    estimate (0) that is the exponential then binary search from 1. Cost
    never decreases as T grows, so either way T is the same.
    """
    if not isinstance(cap, int):
        raise RatingError(f"cap: {cap!r} is not whole seconds")
    if not isinstance(balance, Decimal) or not balance.is_finite():
        raise RatingError(f"balance: {balance!r} is not a finite Decimal")
    if cap <= 0:
        return 0
    cap = min(cap, MAX_SECONDS)
    try:
        return _settle(ctx, start, balance, cap, _estimate(ctx, start, balance, cap))
    except ArithmeticError as exc:
        raise RatingError(f"cannot price this call: {exc!r}") from exc


def _settle(ctx, start, balance, cap: int, guess: int) -> int:
    """The largest T <= cap that fits, searched on call_cost from `guess`."""
    def fits(t: int) -> bool:
        return _cost(ctx, start, t) <= balance

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
    is the longest billed duration up to that second. Prices never fall as
    a call grows (the checks see to it); the exact cost checks it anyway.
    """
    walk = _walk(ctx, start)
    rate = walk.rate0
    extra = walk.checked.per_minute
    try:
        found = _limit60(ctx, balance, walk.discount_of(ctx))
        if found is None:
            return 0
        limit, strict = found
        within = (lambda x: x < limit) if strict else (lambda x: x <= limit)
        total60 = _connect(walk) * 60
        if not within(rate.minimum * 60) or not within(total60):
            return 0
        horizon = None                           # billed_seconds(cap): all of it fits
        k = 0
        segments = walk.through(ctx, 1)
        while True:
            if k == len(segments):
                segments = walk.through(ctx, segments[-1][1] + 1)
            p, q, _, _, per_minute = segments[k]
            if extra:
                per_minute += extra
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
    return _PREC60.divide(_PREC60.multiply(top, 6000), 100 - percent), edge != 0

