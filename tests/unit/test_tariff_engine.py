"""The rating engine: worked examples, band crossings, steps, and properties."""

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from textwrap import dedent
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kondge_billing.money import MoneyError, round_money, to_decimal
from kondge_billing.tariffs import engine, schema
from kondge_billing.tariffs.engine import Rate, RatingContext, Step, allowed_seconds, call_cost
from kondge_billing.tariffs.resolve import context_for
from tests.support import reference_engine as reference

T0 = datetime(2026, 3, 3, 12, 0, tzinfo=timezone.utc)          # a Tuesday


def ctx_of(yaml_text: str, number: str, **call) -> RatingContext:
    doc, problems = schema.parse(dedent(yaml_text), "inline.yaml")
    assert problems == []
    ctx = context_for(doc, number, **call)
    assert ctx is not None
    return ctx


def simple(price="0.15", connect="0", initial=60, increment=6, decimals=4, rounding="up",
           minimum="0") -> RatingContext:
    rate = Rate(Decimal(connect), Decimal(minimum), initial,
                (Step(0, Decimal(price), increment),))
    return RatingContext("t", 1, 1, 1, "USD", decimals, rounding, "UTC", "p", None, "UK", "44",
                         {"*": rate})


def cost(ctx, seconds, start=T0):
    return call_cost(ctx, start, seconds)


@pytest.mark.parametrize("seconds, billed", [
    (0, 0), (1, 60), (60, 60), (61, 66), (66, 66), (67, 72), (125, 126)])
def test_billed_seconds_initial_block_then_increments(seconds, billed):
    assert engine.billed_seconds(simple().rates["*"], seconds) == billed


@pytest.mark.parametrize("price, connect, seconds, expected", [
    ("0.15", "0", 125, "0.3150"),       # 126 s at 0.15/min
    ("0.02", "0", 1, "0.0200"),          # a one-second call pays the initial block
    ("0.02", "0", 0, "0.0000"),          # unanswered: nothing, not even the connect charge
    ("0.05", "0.10", 61, "0.1550"),      # connect + 66 s at 0.05/min
    ("0.07", "0", 7, "0.0700"),
])
def test_call_cost_examples(price, connect, seconds, expected):
    assert cost(simple(price, connect), seconds) == Decimal(expected)


def test_cost_rounds_once_with_the_named_mode():
    # 0.013/min for 66 s = 0.0143 exactly; up to 2 decimals -> 0.02, half-up -> 0.01
    assert cost(simple("0.013", decimals=2, rounding="up"), 61) == Decimal("0.02")
    assert cost(simple("0.013", decimals=2, rounding="half-up"), 61) == Decimal("0.01")
    assert cost(simple("0.013", decimals=2, rounding="down"), 61) == Decimal("0.01")


def test_minimum_charge():
    assert cost(simple("0.01", minimum="0.10"), 30) == Decimal("0.1000")
    assert cost(simple("0.01", minimum="0.10"), 0) == Decimal("0.0000")


PROGRESSIVE = """
    tariff: cgr
    valid_from: 2026-01-01
    currency: USD
    decimals: 4
    rounding: up
    destinations: {Anywhere: [1]}
    plans:
      - name: p
        rates:
          - destination: Anywhere
            connect: 0.4
            steps:
              - {seconds: 60, per_minute: 0.2, increment: 60}
              - {per_minute: 0.1, increment: 1}
"""


@pytest.mark.parametrize("seconds, expected", [
    (1, "0.6000"), (60, "0.6000"),
    (61, "0.6017"),          # the worked figure: 0.4 + 0.2 + 0.1/60, rounded up
    (120, "0.7000"), (0, "0.0000")])
def test_worked_example_progressive_steps(seconds, expected):
    assert cost(ctx_of(PROGRESSIVE, "15551234"), seconds) == Decimal(expected)


def test_progressive_steps_allowed_time():
    ctx = ctx_of(PROGRESSIVE, "15551234")
    assert allowed_seconds(ctx, T0, Decimal("0.5999"), 86400) == 0
    assert allowed_seconds(ctx, T0, Decimal("0.60"), 86400) == 60
    # 0.70 pays 60 s more at 0.1/min; 0.6999 not quite
    assert allowed_seconds(ctx, T0, Decimal("0.70"), 86400) == 120
    assert allowed_seconds(ctx, T0, Decimal("0.6999"), 86400) == 119


BANDS = """
    tariff: banded
    valid_from: 2026-01-01
    currency: EUR
    timezone: UTC
    defaults: {initial: 1, increment: 1}
    destinations: {Mobile: [4915]}
    bands:
      peak: {days: [mon, tue, wed, thu, fri], hours: "08:00-22:00"}
      offpeak: {days: [mon, tue, wed, thu, fri], hours: "22:00-08:00"}
      weekend: {days: [sat, sun, holiday]}
    holidays: [2026-03-04]
    plans:
      - name: p
        rates:
          - {destination: Mobile, band: peak, per_minute: 0.60}
          - {destination: Mobile, band: offpeak, per_minute: 0.06}
          - {destination: Mobile, band: weekend, per_minute: 0.03}
"""


def test_a_call_crossing_into_off_peak_pays_each_band():
    ctx = ctx_of(BANDS, "491511")
    start = datetime(2026, 3, 3, 21, 58, tzinfo=timezone.utc)   # Tuesday 21:58
    b = engine.rate_call(ctx, start, 600)
    assert [(s.band, s.start, s.end) for s in b.segments] == [
        ("peak", 0, 120), ("offpeak", 120, 600)]
    assert b.cost == Decimal("1.2000") + Decimal("0.4800")


def test_allowed_time_is_exact_across_a_band_boundary():
    ctx = ctx_of(BANDS, "491511")
    start = datetime(2026, 3, 3, 21, 58, tzinfo=timezone.utc)
    # 1.20 pays the two peak minutes; each further 0.01 pays 10 s off-peak.
    assert allowed_seconds(ctx, start, Decimal("1.20"), 86400) == 120
    assert allowed_seconds(ctx, start, Decimal("1.30"), 86400) == 220
    t = allowed_seconds(ctx, start, Decimal("2.00"), 86400)
    assert cost(ctx, t, start) <= Decimal("2.00") < cost(ctx, t + 1, start)
    # the naive estimate at the start's peak rate would grant only 200 s
    assert t == 120 + 800


def test_holiday_is_rated_as_its_band():
    ctx = ctx_of(BANDS, "491511")
    holiday_noon = datetime(2026, 3, 4, 12, 0, tzinfo=timezone.utc)   # a Wednesday
    assert engine.rate_call(ctx, holiday_noon, 60).band == "weekend"
    assert engine.rate_call(ctx, holiday_noon + timedelta(days=1), 60).band == "peak"


def test_bands_read_in_the_tariffs_time_zone():
    ctx = ctx_of(BANDS.replace("timezone: UTC", "timezone: Europe/Berlin"), "491511")
    # 21:30 UTC is 22:30 in Berlin (CET, UTC+1) in March before DST
    assert engine.rate_call(ctx, datetime(2026, 3, 3, 21, 30, tzinfo=timezone.utc),
                            60).band == "offpeak"


DISCOUNTS = BANDS + """
    discounts:
      - {name: weekend promo, percent: 10, bands: [weekend]}
      - {name: gold, percent: 50, categories: [gold], from: 2026-03-01, until: 2026-04-01}
"""


@pytest.mark.parametrize("category, start, expected", [
    (None, datetime(2026, 3, 7, 12, tzinfo=timezone.utc), "0.0270"),       # Saturday: 10 %
    (None, datetime(2026, 3, 3, 12, tzinfo=timezone.utc), "0.6000"),       # Tuesday peak
    ("gold", datetime(2026, 3, 3, 12, tzinfo=timezone.utc), "0.3000"),     # gold in March
    ("gold", datetime(2026, 4, 7, 12, tzinfo=timezone.utc), "0.6000"),     # gold, April
    ("gold", datetime(2026, 3, 7, 12, tzinfo=timezone.utc), "0.0150"),     # highest wins
])
def test_discounts(category, start, expected):
    ctx = ctx_of(DISCOUNTS, "491511", category=category)
    assert cost(ctx, 60, start) == Decimal(expected)


def test_demo_uk_mobile_grant():
    # 10.00 at 0.15/min: 4000 s would cost exactly 10; the last whole block ends at 3996.
    assert allowed_seconds(simple(), T0, Decimal("10.00"), 86400) == 3996
    assert cost(simple(), 3996) <= Decimal("10.00") < cost(simple(), 3997)


def test_balance_below_first_block_allows_nothing():
    assert allowed_seconds(simple("0.15"), T0, Decimal("0.1499"), 86400) == 0
    assert allowed_seconds(simple("0.15"), T0, Decimal("0.15"), 86400) == 60


def test_initial_block_larger_than_increment_never_overspends():
    r = simple("1.00", initial=60, increment=1)
    assert allowed_seconds(r, T0, Decimal("0.99"), 86400) == 0
    t = allowed_seconds(r, T0, Decimal("1.50"), 86400)
    assert t == 90 and cost(r, t) == Decimal("1.5000")


def test_free_destination_is_capped():
    assert allowed_seconds(simple("0"), T0, Decimal("1"), 7200) == 7200


def test_money_refuses_float():
    with pytest.raises(MoneyError):
        to_decimal(0.1)
    with pytest.raises(MoneyError):
        to_decimal("ten")
    with pytest.raises(MoneyError):
        round_money(Decimal("1"), 2, "bankers")


# --- properties ---------------------------------------------------------------

prices = st.decimals(min_value=Decimal("0"), max_value=Decimal("5"), places=4)


@st.composite
def contexts(draw):
    n_steps = draw(st.integers(1, 3))
    starts = sorted(draw(st.sets(st.integers(1, 600), min_size=n_steps - 1,
                                 max_size=n_steps - 1)))
    def rate():
        steps = tuple(Step(s, draw(prices), draw(st.integers(1, 60)))
                      for s in [0] + starts)
        return Rate(draw(prices.filter(lambda p: p <= 1)), draw(prices.filter(lambda p: p <= 1)),
                    draw(st.integers(0, 120)), steps)
    bands = (engine.Band("day", engine.DAY_KINDS, ((480, 1320),)),
             engine.Band("night", engine.DAY_KINDS, ((0, 480), (1320, 1440))))
    banded = draw(st.booleans())
    rates = {"day": rate(), "night": rate()} if banded else {"*": rate()}
    return RatingContext("t", 1, 1, 1, "USD", draw(st.integers(0, 6)),
                         draw(st.sampled_from(["up", "half-up", "down"])), "UTC", "p", None,
                         "X", "1", rates, bands if banded else ())


starts = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31),
                      timezones=st.just(timezone.utc))
balances = st.decimals(min_value=Decimal("0"), max_value=Decimal("50"), places=4)


@settings(max_examples=150, deadline=None)
@given(contexts(), starts, st.integers(0, 20000), st.integers(0, 600))
def test_cost_never_decreases_with_duration(ctx, start, t, extra):
    assert cost(ctx, t, start) <= cost(ctx, t + extra, start)


@settings(max_examples=150, deadline=None)
@given(contexts(), starts, balances)
def test_granted_time_is_the_largest_that_fits(ctx, start, balance):
    cap = 86400
    t = allowed_seconds(ctx, start, balance, cap)
    if t == 0:
        assert cost(ctx, 1, start) > balance
        return
    assert cost(ctx, t, start) <= balance                # never a second the balance cannot pay
    if t < cap:
        band, _ = engine.band_at(ctx, start, t)
        rate = ctx.rate_for(engine.band_at(ctx, start, 0)[0])
        increment = rate.steps[rate.step_at(t)[0]].increment
        assert cost(ctx, t + 1, start) > balance         # and not one second less than it can
        assert cost(ctx, t + increment, start) > balance


# --- the engine against the old one (tests/support/reference_engine.py) ---------
#
# allowed_seconds estimates from a walk of the call's seconds and lets the
# exact cost settle it; rate_call reuses the walk. The old engine looked
# every band up afresh and searched on the exact cost: on any tariff the
# schema allows, both must give the same grant and the same breakdown.

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu")
# DST changes (Europe, US, Lord Howe's half hour), the year's end, a plain Tuesday
DAYS = (date(2026, 3, 29), date(2026, 10, 25), date(2026, 3, 8), date(2026, 11, 1),
        date(2026, 4, 5), date(2026, 10, 4), date(2026, 12, 31), date(2026, 3, 3))
money_amounts = st.one_of(st.just(Decimal(0)),
                          st.decimals(min_value=Decimal("0"), max_value=Decimal("3"), places=4))


@st.composite
def any_rate(draw):
    starts = sorted(draw(st.sets(st.integers(1, 900), max_size=3)))
    steps = tuple(Step(s, draw(money_amounts), draw(st.integers(1, 120))) for s in [0] + starts)
    return Rate(draw(money_amounts), draw(money_amounts), draw(st.integers(0, 180)), steps)


@st.composite
def band_layouts(draw):
    """(bands, cut minutes): weekdays cut into up to five ranges of up to three bands."""
    if draw(st.integers(0, 3)) == 0:
        return (), []
    cuts = sorted(draw(st.sets(st.integers(1, 1439), min_size=1, max_size=4)))
    edges = [0] + cuts + [engine.MINUTES_PER_DAY]
    weekend = draw(st.booleans())
    days = engine.DAY_KINDS[:5] if weekend else engine.DAY_KINDS[:7]
    ranges: dict = {}
    for s, e in zip(edges, edges[1:]):
        ranges.setdefault(draw(st.sampled_from("abc")), []).append((s, e))
    bands = tuple(engine.Band(name, days, tuple(r)) for name, r in ranges.items())
    if weekend:
        bands += (engine.Band("w", ("sat", "sun", "holiday"), ((0, engine.MINUTES_PER_DAY),)),)
    return bands, cuts


@st.composite
def calls(draw):
    """(context, start, balance, cap): starts near band ends, midnight and DST changes."""
    zone = draw(st.sampled_from(ZONES))
    bands, cuts = draw(band_layouts())
    names = [b.name for b in bands]
    rated = draw(st.sets(st.sampled_from(names))) if names else set()
    rates = {name: draw(any_rate()) for name in sorted(rated)}
    if not rates or draw(st.booleans()):
        rates["*"] = draw(any_rate())
    day = draw(st.one_of(st.sampled_from(DAYS),
                         st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 12, 31))))
    anchor = draw(st.sampled_from([0, 120, 180] + cuts))
    local = datetime.combine(day, datetime.min.time()) + timedelta(
        minutes=anchor, seconds=draw(st.integers(-400, 400)),
        microseconds=draw(st.sampled_from([0, 1, 123456, 999999])))
    start = local.replace(tzinfo=ZoneInfo(zone), fold=draw(st.integers(0, 1)))
    if draw(st.integers(0, 3)):
        start = start.astimezone(timezone.utc)           # as the call path passes it
    holidays = frozenset(day + timedelta(days=d) for d in draw(st.sets(st.integers(-1, 1))))
    discounts = tuple(
        engine.Discount(f"d{n}", draw(st.sampled_from([Decimal("0.01"), Decimal(10),
                                                        Decimal("12.5"), Decimal(100)])),
                        draw(st.sampled_from([None, ("gold",)])),
                        draw(st.sampled_from([None] + [(name,) for name in names])),
                        draw(st.sampled_from([None, start - timedelta(days=1), start])),
                        draw(st.sampled_from([None, start, start + timedelta(hours=1)])))
        for n in range(draw(st.integers(0, 2))))
    ctx = RatingContext("t", 1, 1, 1, "USD", draw(st.integers(0, 6)),
                        draw(st.sampled_from(["up", "half-up", "down"])), zone, "p",
                        draw(st.sampled_from([None, "gold"])), "X", "1", rates, bands,
                        holidays, discounts)
    cap = draw(st.one_of(st.sampled_from([1, 2, 60, 61, 3600, 86400]), st.integers(1, 30000)))
    if draw(st.booleans()):
        balance = draw(st.decimals(min_value=Decimal(0), max_value=Decimal(60), places=6))
    else:       # just at, above or below what some call costs: where the grant turns
        cost_of = reference.call_cost(ctx, start, draw(st.integers(1, 20000)))
        step = Decimal(1).scaleb(-ctx.decimals)
        balance = cost_of + draw(st.sampled_from([0, step, -step, step / 2, -step / 2,
                                                  Decimal("1E-9"), Decimal("-1E-9")]))
    return ctx, start, balance, cap


@settings(max_examples=300, deadline=None)
@given(calls())
def test_allowed_seconds_is_the_old_search(call):
    ctx, start, balance, cap = call
    assert allowed_seconds(ctx, start, balance, cap) == reference.allowed_seconds(*call)


@settings(max_examples=150, deadline=None)
@given(calls(), st.integers(0, 30000))
def test_rate_call_is_the_old_rate_call(call, seconds):
    ctx, start, balance, cap = call
    granted = allowed_seconds(ctx, start, balance, cap)
    for t in (seconds, granted, granted + 1, 1, 0):        # one walk serves them all
        assert engine.rate_call(ctx, start, t) == reference.rate_call(ctx, start, t)
        assert call_cost(ctx, start, t) == reference.call_cost(ctx, start, t)


@settings(max_examples=200, deadline=None)
@given(calls())
def test_the_estimate_is_the_answer(call):
    """The exact cost only confirms: no search, where the estimate applies."""
    ctx, start, balance, cap = call
    walk = engine._walk(ctx, start)
    if walk.rate0 is None or engine._limit60(ctx, balance, walk.discount_of(ctx)) is None:
        return          # a band without a rate, or a 100 % discount: the search from 1
    assert engine._estimate(ctx, start, balance, cap) == reference.allowed_seconds(*call)


@settings(max_examples=200, deadline=None)
@given(calls(), st.data())
def test_the_exact_cost_corrects_any_estimate(call, data):
    """A wrong estimate costs time, never a second: the search goes on from it."""
    ctx, start, balance, cap = call
    expected = reference.allowed_seconds(*call)
    guess = data.draw(st.one_of(st.integers(0, cap), st.sampled_from(
        [1, cap, max(expected - 1, 0), min(expected + 1, cap), cap + 1])))
    assert engine._settle(ctx, start, balance, cap, guess) == expected


@pytest.mark.parametrize("rate", [
    Rate(Decimal(0), Decimal(0), 60, (Step(0, Decimal("0.15"), 6),)),
    Rate(Decimal(0), Decimal(0), 0, (Step(0, Decimal(1), 7), Step(20, Decimal(1), 60),
                                     Step(45, Decimal(1), 1))),
    Rate(Decimal(0), Decimal(0), 50, (Step(0, Decimal(1), 60), Step(30, Decimal(1), 9),
                                      Step(100, Decimal(1), 13))),
])
def test_last_billed_is_the_longest_billed_duration_within(rate):
    billed = {engine.billed_seconds(rate, t) for t in range(1, 400)}
    for s in range(0, 300):
        assert engine._last_billed(rate, s) == max((b for b in billed if b <= s), default=0)


def test_prices_that_fall_get_the_old_search():
    """Outside what the schema allows (a negative price) there is no estimate."""
    rate = Rate(Decimal("0.5"), Decimal(0), 10, (Step(0, Decimal("0.6"), 10),
                                                 Step(300, Decimal("-0.3"), 1)))
    ctx = RatingContext("t", 1, 1, 1, "USD", 4, "up", "UTC", "p", None, "X", "1", {"*": rate})
    for balance in ("0.5", "1.5", "3.4", "3.5", "100"):
        call = (ctx, T0, Decimal(balance), 86400)
        assert engine._estimate(*call) == 0
        assert allowed_seconds(*call) == reference.allowed_seconds(*call)


def test_each_start_has_its_own_walk():
    """Equal instants, other time zones: across a DST change they add seconds
    differently (wall clock), so the memo keeps a walk per datetime object."""
    ctx = ctx_of(BANDS.replace("timezone: UTC", "timezone: Europe/Berlin")
                 .replace("08:00-22:00", "04:00-22:00").replace("22:00-08:00", "22:00-04:00")
                 .replace("weekend: {days: [sat, sun, holiday]}",
                          "weekend: {days: [sat, sun, holiday], hours: \"04:00-22:00\"}\n"
                          "      night: {days: [sat, sun, holiday], hours: \"22:00-04:00\"}")
                 .replace("band: weekend, per_minute: 0.03}",
                          "band: weekend, per_minute: 0.03}\n"
                          "          - {destination: Mobile, band: night, per_minute: 0.01}"),
                 "491511")
    utc_start = datetime(2026, 3, 29, 0, 30, tzinfo=timezone.utc)  # Sunday, 01:30 in Berlin
    berlin_start = utc_start.astimezone(ZoneInfo("Europe/Berlin"))
    assert utc_start == berlin_start
    for start in (utc_start, berlin_start, utc_start, berlin_start):
        for seconds in (3 * 3600, 600):
            assert engine.rate_call(ctx, start, seconds) == \
                reference.rate_call(ctx, start, seconds)
        assert allowed_seconds(ctx, start, Decimal("1.00"), 86400) == \
            reference.allowed_seconds(ctx, start, Decimal("1.00"), 86400)
    assert call_cost(ctx, utc_start, 3 * 3600) != call_cost(ctx, berlin_start, 3 * 3600)


def test_band_changes_are_found_on_every_day():
    """Band ends are kept per local day: later days first, then earlier ones."""
    ctx = ctx_of(BANDS.replace("timezone: UTC", "timezone: Europe/Berlin"), "491511")
    zone = ZoneInfo("Europe/Berlin")
    for day in (31, 30, 29, 28, 27, 26, 27, 28, 29, 30, 31):       # a DST change on the 29th
        start = datetime(2026, 3, day, 21, 58, 30, tzinfo=zone).astimezone(timezone.utc)
        for seconds in (600, 36000):
            assert engine.rate_call(ctx, start, seconds) == \
                reference.rate_call(ctx, start, seconds)
