"""The rating engine: worked examples, band crossings, steps, and properties."""

import dataclasses
import re
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, localcontext
from textwrap import dedent
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kondge_billing.rating.money import ZERO, MoneyError, round_money, to_decimal
from kondge_billing.rating import engine, tariff_file
from kondge_billing.rating.engine import Rate, RatingContext, Step, allowed_seconds, call_cost
from kondge_billing.rating.resolve import context_for
from tests.support import reference_engine as reference

T0 = datetime(2026, 3, 3, 12, 0, tzinfo=timezone.utc)          # a Tuesday


def ctx_of(yaml_text: str, number: str, **call) -> RatingContext:
    doc, problems = tariff_file.parse(dedent(yaml_text), "inline.yaml")
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
def surcharge_lists(draw):
    """Up to three surcharges, each matching some calls and not others."""
    return tuple(
        engine.Surcharge(f"s{n}", draw(money_amounts), draw(money_amounts),
                         draw(st.sampled_from([None, ("1800",), ("49", "1")])),
                         draw(st.sampled_from([None, ("44",)])),
                         draw(st.sampled_from([None, ("ny-1",)])),
                         draw(st.sampled_from([None, ("gold",), ("gold", "silver")])))
        for n in range(draw(st.integers(0, 3))))


@st.composite
def calls(draw):
    """(context, start, balance, cap): starts near band ends, midnight and DST changes."""
    zone = draw(st.sampled_from(ZONES))
    bands, cuts = draw(band_layouts())
    names = [b.name for b in bands]
    rated = draw(st.sets(st.sampled_from(names))) if names else set()
    rates = {name: draw(any_rate()) for name in sorted(rated)}
    if not rates or set(names) - rated or draw(st.booleans()):
        rates["*"] = draw(any_rate())         # every band has a rate (else: RatingError)
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
                        holidays, discounts, draw(surcharge_lists()),
                        draw(st.sampled_from([None, "18005550100", "4930800"])),
                        draw(st.sampled_from([None, "447700900123", "4930123"])),
                        draw(st.sampled_from([None, "ny-1", "fra-1"])))
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


def test_a_price_that_falls_is_refused():
    """Outside what the schema allows (a negative price) the engine does not guess."""
    rate = Rate(Decimal("0.5"), Decimal(0), 10, (Step(0, Decimal("0.6"), 10),
                                                 Step(300, Decimal("-0.3"), 1)))
    ctx = RatingContext("t", 1, 1, 1, "USD", 4, "up", "UTC", "p", None, "X", "1", {"*": rate})
    with pytest.raises(engine.RatingError, match="step 2: per_minute: -0.3 is negative"):
        allowed_seconds(ctx, T0, Decimal("1.5"), 86400)
    with pytest.raises(engine.RatingError):
        call_cost(ctx, T0, 400)
    with pytest.raises(engine.RatingError):
        engine.rate_call(ctx, T0, 0)


def test_a_start_in_any_time_zone_is_the_same_instant():
    """Equal instants in other time zones are the same call, across a DST change
    too: the engine counts a call's seconds on the UTC clock, never the wall clock."""
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
    tokyo_start = utc_start.astimezone(ZoneInfo("Asia/Tokyo"))
    expected = reference.rate_call(ctx, utc_start, 3 * 3600)
    # 01:30 CET to 04:00 CEST is 1.5 hours of night: 5400 s, then weekend
    assert [(s.band, s.start, s.end) for s in expected.segments] == [
        ("night", 0, 5400), ("weekend", 5400, 10800)]
    for start in (utc_start, berlin_start, tokyo_start, utc_start, berlin_start):
        for seconds in (3 * 3600, 600):
            assert engine.rate_call(ctx, start, seconds) == \
                reference.rate_call(ctx, start, seconds)
        assert engine.rate_call(ctx, start, 3 * 3600) == expected
        assert allowed_seconds(ctx, start, Decimal("1.00"), 86400) == \
            reference.allowed_seconds(ctx, utc_start, Decimal("1.00"), 86400)


def test_band_changes_are_found_on_every_day():
    """Band ends are kept per local day: later days first, then earlier ones."""
    ctx = ctx_of(BANDS.replace("timezone: UTC", "timezone: Europe/Berlin"), "491511")
    zone = ZoneInfo("Europe/Berlin")
    for day in (31, 30, 29, 28, 27, 26, 27, 28, 29, 30, 31):       # a DST change on the 29th
        start = datetime(2026, 3, day, 21, 58, 30, tzinfo=zone).astimezone(timezone.utc)
        for seconds in (600, 36000):
            assert engine.rate_call(ctx, start, seconds) == \
                reference.rate_call(ctx, start, seconds)


# --- daylight saving: every second by its own local time ---------------------------
#
# Europe/Berlin 2026-03-29: at 01:00Z the clocks go from 02:00 CET to 03:00
# CEST (02:00-03:00 never shows). 2026-10-25: at 01:00Z from 03:00 CEST back
# to 02:00 CET (02:00-03:00 shows twice: 00:00Z-01:00Z and 01:00Z-02:00Z).

DST = """
    tariff: dst
    valid_from: 2026-01-01
    currency: EUR
    decimals: 6
    timezone: {zone}
    defaults: {{initial: 1, increment: 1}}
    destinations: {{X: [49]}}
    bands:
{bands}
    plans:
      - name: p
        rates:
{rates}
"""
PRICES = {"night": "0.01", "early": "0.10", "day": "1.00", "weekend": "0.02"}
EVERY_DAY = "[mon, tue, wed, thu, fri, sat, sun]"


def dst_ctx(zone: str, hours: dict, days: str = EVERY_DAY) -> RatingContext:
    """A tariff in `zone` whose bands cover `days` with {band: "HH:MM-HH:MM"}."""
    bands = [f'      {name}: {{days: {days}, hours: "{h}"}}' for name, h in hours.items()]
    if days != EVERY_DAY:
        bands.append("      weekend: {days: [sat, sun]}")
    names = list(hours) + (["weekend"] if days != EVERY_DAY else [])
    rates = [f"          - {{destination: X, band: {n}, per_minute: {PRICES[n]}}}" for n in names]
    return ctx_of(DST.format(zone=zone, bands="\n".join(bands), rates="\n".join(rates)), "491")


def per_minute_to_money(total: Decimal) -> Decimal:
    """sum(per_minute x seconds) / 60, at the engine's 60 digits."""
    with localcontext() as c:
        c.prec = 60
        return total / 60


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


BERLIN = ZoneInfo("Europe/Berlin")


def night_day(edge: str) -> dict:
    return {"night": f"00:00-{edge}", "day": f"{edge}-24:00"}


@pytest.mark.parametrize("zone, hours, start, seconds, expected", [
    # spring forward: a band ending at, inside or at the end of the missing
    # hour ends when the clocks jump (01:00Z); one ending later, at its time
    ("Europe/Berlin", night_day("02:00"), utc(2026, 3, 29, 0, 59), 7200,
     [("night", 0, 60), ("day", 60, 7200)]),
    ("Europe/Berlin", night_day("02:30"), utc(2026, 3, 29, 0, 59), 7200,       # as reported
     [("night", 0, 60), ("day", 60, 7200)]),
    ("Europe/Berlin", night_day("03:00"), utc(2026, 3, 29, 0, 59), 7200,
     [("night", 0, 60), ("day", 60, 7200)]),
    ("Europe/Berlin", night_day("03:30"), utc(2026, 3, 29, 0, 59), 7200,
     [("night", 0, 1860), ("day", 1860, 7200)]),
    ("Europe/Berlin", night_day("01:30"), utc(2026, 3, 29, 0, 0), 7200,
     [("night", 0, 1800), ("day", 1800, 7200)]),
    # a call across the change with three bands: midnight CET to 06:00 CEST
    ("Europe/Berlin", {"night": "00:00-02:15", "early": "02:15-06:00", "day": "06:00-24:00"},
     utc(2026, 3, 28, 23, 0), 21600,
     [("night", 0, 7200), ("early", 7200, 18000), ("day", 18000, 21600)]),
    # the start given on the local clock
    ("Europe/Berlin", night_day("02:30"), datetime(2026, 3, 29, 1, 59, tzinfo=BERLIN), 7200,
     [("night", 0, 60), ("day", 60, 7200)]),
    # fall back: 02:00-03:00 shows twice
    ("Europe/Berlin", night_day("02:00"), utc(2026, 10, 24, 23, 30), 10800,
     [("night", 0, 1800), ("day", 1800, 10800)]),
    ("Europe/Berlin", night_day("02:30"), utc(2026, 10, 25, 0, 10), 7200,
     [("night", 0, 1200), ("day", 1200, 3000), ("night", 3000, 4800), ("day", 4800, 7200)]),
    ("Europe/Berlin", night_day("03:00"), utc(2026, 10, 24, 23, 30), 10800,
     [("night", 0, 9000), ("day", 9000, 10800)]),
    ("Europe/Berlin", night_day("01:30"), utc(2026, 10, 24, 23, 0), 10800,
     [("night", 0, 1800), ("day", 1800, 10800)]),
    ("Europe/Berlin", night_day("03:30"), utc(2026, 10, 24, 23, 0), 14400,
     [("night", 0, 12600), ("day", 12600, 14400)]),
    ("Europe/Berlin", night_day("02:30"), utc(2026, 10, 25, 1, 15), 3600,     # second pass
     [("night", 0, 900), ("day", 900, 3600)]),
    ("Europe/Berlin", night_day("02:30"),
     datetime(2026, 10, 25, 2, 15, fold=1, tzinfo=BERLIN), 3600,
     [("night", 0, 900), ("day", 900, 3600)]),
    ("Europe/Berlin", night_day("02:30"), datetime(2026, 10, 25, 2, 15, tzinfo=BERLIN), 7200,
     [("night", 0, 900), ("day", 900, 2700), ("night", 2700, 4500), ("day", 4500, 7200)]),
    # the local day (Sunday, weekend) ends at 23:00Z after the change
    ("Europe/Berlin", night_day("06:00"), utc(2026, 10, 25, 22, 30), 3600,
     [("weekend", 0, 1800), ("night", 1800, 3600)]),
    # New York falls back at 06:00Z (01:00-02:00 twice); Lord Howe by half
    # an hour at 15:00Z (01:30-02:00 twice)
    ("America/New_York", night_day("01:30"), utc(2026, 11, 1, 5, 15), 3600,
     [("night", 0, 900), ("day", 900, 2700), ("night", 2700, 3600)]),
    ("Australia/Lord_Howe", night_day("01:45"), utc(2026, 4, 4, 14, 40), 3600,
     [("night", 0, 300), ("day", 300, 1200), ("night", 1200, 2100), ("day", 2100, 3600)]),
])
def test_bands_across_daylight_saving_changes(zone, hours, start, seconds, expected):
    days = "[mon, tue, wed, thu, fri]" if expected[0][0] == "weekend" else EVERY_DAY
    ctx = dst_ctx(zone, hours, days)
    b = engine.rate_call(ctx, start, seconds)
    assert [(s.band, s.start, s.end) for s in b.segments] == expected
    assert b == reference.rate_call(ctx, start, seconds)
    price = {name: Decimal(p) for name, p in PRICES.items()}
    assert b.raw == per_minute_to_money(sum(price[band] * (q - p) for band, p, q in expected))
    # the grant across the change is the largest that fits, second by second
    balance = b.cost - Decimal("0.000001")
    assert allowed_seconds(ctx, start, balance, 86400) == \
        reference.allowed_seconds(ctx, start, balance, 86400) == seconds - 1


def test_the_reported_call_pays_one_minute_of_night():
    """2026-03-29, from 00:59Z (01:59 CET): 60 s of night, then day; not 31 minutes."""
    ctx = dst_ctx("Europe/Berlin", night_day("02:30"))
    b = engine.rate_call(ctx, utc(2026, 3, 29, 0, 59), 1860)
    assert [(s.band, s.end - s.start) for s in b.segments] == [("night", 60), ("day", 1800)]
    assert b.cost == Decimal("0.01") + Decimal("30.00")


def brute_force_prices(ctx: RatingContext, start: datetime, billed: int) -> list:
    """(band, per-minute price) of each billed second, each looked up by itself:
    the second's instant, on the tariff's wall clock."""
    zone, table = ZoneInfo(ctx.timezone), engine.day_table(ctx.bands)
    origin = start.astimezone(timezone.utc)
    rate0 = ctx.rate_for(reference.band_of_instant(ctx, origin))
    assert rate0 is not None
    prices = []
    for k in range(billed):
        local = (origin + timedelta(seconds=k)).astimezone(zone)
        minute = local.hour * 60 + local.minute
        band = next(name for s, e, name in table[engine.day_kind(ctx, local.date())]
                    if s <= minute < e)
        rate = ctx.rate_for(band)
        prices.append((band, rate.steps[rate.step_at(k)[0]].per_minute))
    return prices


CHANGES = (utc(2026, 3, 29, 1), utc(2026, 10, 25, 1))


@st.composite
def dst_calls(draw):
    """A Berlin tariff cut near the changed hours, a call around a change."""
    cuts = sorted(draw(st.sets(st.one_of(st.integers(60, 240), st.integers(1, 1439)),
                               min_size=1, max_size=4)))
    edges = [0] + cuts + [engine.MINUTES_PER_DAY]
    ranges: dict = {}
    for n, (s, e) in enumerate(zip(edges, edges[1:])):
        ranges.setdefault("abc"[n % 3] if len(edges) > 3 else "ab"[n % 2], []).append((s, e))
    bands = tuple(engine.Band(name, engine.DAY_KINDS[:7], tuple(r))
                  for name, r in ranges.items())
    rates = {}
    for n, name in enumerate(sorted(ranges)):
        steps = (Step(0, Decimal(n + 1), 1),)
        if draw(st.booleans()):
            steps += (Step(draw(st.integers(1, 7200)), Decimal(n + 1) / 10, 1),)
        rates[name] = Rate(Decimal(0), Decimal(0), 1, steps)
    ctx = RatingContext("t", 1, 1, 1, "EUR", 8, "up", "Europe/Berlin", "p", None, "X", "1",
                        rates, bands)
    start = draw(st.sampled_from(CHANGES)) + timedelta(
        seconds=draw(st.integers(-6 * 3600, 6 * 3600)),
        microseconds=draw(st.sampled_from([0, 1, 500000, 999999])))
    if draw(st.booleans()):
        start = start.astimezone(BERLIN)           # on the local clock, fold as it falls
    return ctx, start, draw(st.integers(1, 4 * 3600))


@settings(max_examples=80, deadline=None)
@given(dst_calls())
def test_each_second_is_priced_by_its_own_local_time(call):
    ctx, start, seconds = call
    b = engine.rate_call(ctx, start, seconds)
    per_second = [(s.band, s.per_minute) for s in b.segments for _ in range(s.start, s.end)]
    expected = brute_force_prices(ctx, start, b.billed)
    assert per_second == expected
    assert b.raw == per_minute_to_money(sum(price for _, price in expected))
    assert b == reference.rate_call(ctx, start, seconds)


# --- limits: a right answer or RatingError, never a hang or a wrong number ------------

def refused_contexts():
    good = simple().rates["*"]
    step = good.steps[0]
    bands = (engine.Band("day", engine.DAY_KINDS[:7], ((0, 1440),)),)

    def rate(**change):
        return {"*": Rate(**{**vars(good), **change})}
    cases = [
        ("per_minute: 1E+308 is above", rate(steps=(Step(0, Decimal("1e308"), 6),))),
        ("connect: 1E+30 is above", rate(connect=Decimal("1e30"))),
        ("minimum: Decimal('NaN')", rate(minimum=Decimal("NaN"))),
        ("more than 8 decimals", rate(steps=(Step(0, Decimal("0.000000001"), 6),))),
        ("initial: 10", rate(initial=10 ** 26)),
        ("increment 100000000000000000000", rate(steps=(Step(0, step.per_minute, 10 ** 20),))),
        ("increment 0", rate(steps=(Step(0, step.per_minute, 0),))),
        ("step 2 starts", rate(steps=(step, Step(10 ** 20, step.per_minute, 6)))),
        ("step 2 starts", rate(steps=(step, step))),
        ("step 1 starts", rate(steps=(Step(5, step.per_minute, 6),))),
        ("from 1 to 32 steps", rate(steps=tuple(Step(n, step.per_minute, 1)
                                                for n in range(33)))),
        ("from 1 to 32 steps", rate(steps=())),
        ("no rates", {}),
        ("no rate for band day", {"day": None} | {"night": good}, bands),
        ("decimals", rate(), (), {"decimals": 9}),
        ("rounding", rate(), (), {"rounding": "bankers"}),
        ("rounding", rate(), (), {"rounding": ["up"]}),
        ("holidays", rate(), (), {"holidays": frozenset({"2026-12-25"})}),
        ("holidays", rate(), (), {"holidays": [date(2026, 12, 25)]}),
        ("unknown time zone", rate(), (), {"timezone": "Mars/Olympus"}),
        ("bands on mon", rate(), (engine.Band("day", engine.DAY_KINDS, ((0, 600),)),)),
        ("bands on sun", rate(), (engine.Band("day", engine.DAY_KINDS[:6], ((0, 1440),)),)),
        ("at most 24 bands", rate(), tuple(engine.Band(f"b{n}", ("mon",), ((n, n + 1),))
                                           for n in range(25))),
        ("percent: 150 is above 100", rate(), (),
         {"discounts": (engine.Discount("x", Decimal(150)),)}),
        ("surcharge x: per_minute: -1 is negative", rate(), (),
         {"surcharges": (engine.Surcharge("x", Decimal(-1)),)}),
        ("at most 16", rate(), (),
         {"surcharges": tuple(engine.Surcharge(f"s{n}") for n in range(17))}),
        ("not 1800", rate(), (),                  # the facts matter where surcharges do
         {"access_number": 1800, "surcharges": (engine.Surcharge("x", access=("1800",)),)}),
    ]
    return [(c + ((), {}))[:4] if len(c) == 2 else (c + ({},))[:4] for c in cases]


@pytest.mark.parametrize("words, rates, bands, change", refused_contexts(),
                         ids=[c[0] for c in refused_contexts()])
def test_a_context_beyond_the_limits_is_refused(words, rates, bands, change):
    rates = {k: v for k, v in rates.items() if v is not None}
    ctx = dataclasses.replace(simple(), rates=rates, bands=bands, **change)
    for attempt in (lambda: call_cost(ctx, T0, 61), lambda: engine.rate_call(ctx, T0, 0),
                    lambda: allowed_seconds(ctx, T0, Decimal("10"), 86400)):
        with pytest.raises(engine.RatingError, match=re.escape(words)):
            attempt()


@pytest.mark.parametrize("attempt, words", [
    (lambda: call_cost(simple(), datetime(2026, 3, 3, 12), 60), "with its time zone"),
    (lambda: call_cost(simple(), T0, engine.MAX_SECONDS + 1), "at most 10000000"),
    (lambda: call_cost(simple(), T0, 60.0), "whole seconds"),
    (lambda: allowed_seconds(simple(), T0, Decimal("NaN"), 60), "not a finite Decimal"),
    (lambda: allowed_seconds(simple(), T0, 1.5, 60), "not a finite Decimal"),
    (lambda: allowed_seconds(simple(), T0, Decimal(1), 60.5), "whole seconds"),
    (lambda: call_cost(simple(), datetime(9999, 12, 31, tzinfo=timezone.utc), 86400),
     "cannot price"),
])
def test_a_call_beyond_the_limits_is_refused(attempt, words):
    with pytest.raises(engine.RatingError, match=re.escape(words)):
        attempt()


def test_the_longest_call_is_priced_and_granted_quickly():
    ctx = ctx_of(BANDS.replace("timezone: UTC", "timezone: Europe/Berlin"), "491511")
    began = time.process_time()
    assert call_cost(ctx, T0, engine.MAX_SECONDS) > 0
    assert allowed_seconds(simple("0"), T0, Decimal(1), 10 ** 12) == engine.MAX_SECONDS
    assert allowed_seconds(ctx, T0, Decimal(10) ** 30, 10 ** 12) == engine.MAX_SECONDS
    assert allowed_seconds(ctx, T0, Decimal("1E+60"), 86400) == 86400
    assert time.process_time() - began < 5


extreme_amounts = st.one_of(
    st.sampled_from([Decimal(0), Decimal("0.01"), Decimal(10) ** 6, Decimal(10) ** 6 + 1,
                     Decimal("1e308"), Decimal("1e30"), Decimal(-1), Decimal("NaN"),
                     Decimal("Infinity"), Decimal("0.000000001"), Decimal("1E-50"),
                     Decimal(10) ** 26, Decimal("999999.99999999")]),
    st.decimals(min_value=0, max_value=10 ** 6, places=8))
extreme_seconds = st.sampled_from([0, 1, 5, 60, 86400, 86401, 10 ** 6, 10 ** 20, 10 ** 26, -1])


@st.composite
def extreme_contexts(draw):
    def rate():
        n = draw(st.integers(0, 3))
        starts = [0] + sorted(draw(st.lists(extreme_seconds, min_size=n, max_size=n)))
        steps = tuple(Step(s, draw(extreme_amounts), draw(extreme_seconds)) for s in starts)
        return Rate(draw(extreme_amounts), draw(extreme_amounts), draw(extreme_seconds), steps)
    bands = draw(st.sampled_from([(), (engine.Band("d", engine.DAY_KINDS, ((0, 720),)),
                                       engine.Band("n", engine.DAY_KINDS, ((720, 1440),)))]))
    rates = {"*": rate()} if not bands or draw(st.booleans()) else {"d": rate(), "n": rate()}
    return RatingContext(
        "t", 1, 1, 1, "USD", draw(st.sampled_from([0, 4, 8, 9, 50, -1])),
        draw(st.sampled_from(["up", "half-up", "down", "bankers"])),
        draw(st.sampled_from(["UTC", "Europe/Berlin", "Mars/Olympus"])), "p", "gold", "X", "1",
        rates, bands, frozenset(),
        tuple(engine.Discount("d", p) for p in draw(st.lists(extreme_amounts, max_size=1))),
        tuple(engine.Surcharge("s", draw(extreme_amounts), draw(extreme_amounts))
              for _ in range(draw(st.integers(0, 2)))))


@settings(max_examples=300, deadline=None)
@given(extreme_contexts(),
       st.sampled_from([T0, datetime(2026, 3, 29, 0, 59, 30, tzinfo=timezone.utc),
                        datetime(1, 1, 1, tzinfo=timezone.utc),
                        datetime(9999, 12, 30, tzinfo=timezone.utc)]),
       st.one_of(st.integers(0, 10 ** 5), st.sampled_from([engine.MAX_SECONDS, 10 ** 12])),
       st.integers(0, 7200),
       st.sampled_from([Decimal(0), Decimal("0.5"), Decimal(100), Decimal(10) ** 30,
                        Decimal("1E-30"), Decimal("-5")]),
       st.sampled_from([1, 86400, engine.MAX_SECONDS, 10 ** 12]))
def test_any_context_gets_a_right_answer_or_a_rating_error_quickly(
        ctx, start, seconds, extra, balance, cap):
    began = time.process_time()
    try:
        first, second = call_cost(ctx, start, seconds), call_cost(ctx, start, seconds + extra)
        b = engine.rate_call(ctx, start, seconds)
        granted = allowed_seconds(ctx, start, balance, cap)
    except engine.RatingError:
        pass
    else:
        assert ZERO <= first <= second and b.cost == first
        assert 0 <= granted <= min(cap, engine.MAX_SECONDS)
        if granted:
            assert call_cost(ctx, start, granted) <= balance
    assert time.process_time() - began < 5


# --- surcharges ------------------------------------------------------------------------

SURCHARGED = """
    tariff: sur
    valid_from: 2026-01-01
    currency: USD
    decimals: 4
    defaults: {initial: 60, increment: 6}
    destinations: {UK: [44], UK mobile: [447]}
    plans:
      - name: standard
        rates:
          - {destination: UK, per_minute: 0.05}
          - {destination: UK mobile, per_minute: 0.15, minimum: 0.20}
    discounts:
      - {name: gold, percent: 50, categories: [gold]}
    surcharges:
      - name: toll-free entry
        match: {access: ["1800"]}
        per_minute: 0.03
        connect: 0.05
      - {name: payphone, match: {callers: ["4420"]}, per_minute: 0.10}
      - {name: hotel, match: {gateways: [hotel-1], categories: [standard, gold]}, connect: 0.50}
      - {name: roaming, match: {callers: ["33"]}, per_minute: 0.02}
"""


@pytest.mark.parametrize("number, call, seconds, expected, applied", [
    ("442071234567", {}, 125, "0.1050", []),                    # 126 s at 0.05
    ("442071234567", {"access": "18005550100"}, 125, "0.2180",  # 126 s at 0.08, + 0.05
     ["toll-free entry"]),
    ("442071234567", {"access": "18885550100"}, 125, "0.1050", []),
    ("442071234567", {"access": "18005550100", "caller": "442079460000"}, 125, "0.4280",
     ["toll-free entry", "payphone"]),                          # all that match: 0.18/min
    ("442071234567", {"gateway": "hotel-1", "category": "standard"}, 125, "0.6050", ["hotel"]),
    ("442071234567", {"gateway": "hotel-1"}, 125, "0.1050", []),  # every selector must hold
    ("442071234567", {"access": "18005550100"}, 0, "0.0000", []),  # unanswered: nothing
    ("447911123456", {"access": "18005550100"}, 10, "0.2300", ["toll-free entry"]),
    # the minimum charge is the least the whole call costs, surcharges included
    ("447911123456", {"caller": "33612345678"}, 10, "0.2000", ["roaming"]),
    # the discount comes off the whole price, surcharges included: (0.168 + 0.05) / 2
    ("442071234567", {"access": "18005550100", "category": "gold"}, 125, "0.1090",
     ["toll-free entry"]),
])
def test_surcharges_are_added_to_the_calls_they_match(number, call, seconds, expected, applied):
    ctx = ctx_of(SURCHARGED, number, **call)
    b = engine.rate_call(ctx, T0, seconds)
    assert b.cost == Decimal(expected)
    assert [s.name for s in b.surcharges] == applied
    assert b == reference.rate_call(ctx, T0, seconds)
    assert b.cost == call_cost(ctx, T0, seconds)


def test_the_breakdown_shows_the_surcharge():
    ctx = ctx_of(SURCHARGED, "442071234567", access="18005550100")
    b = engine.rate_call(ctx, T0, 125)
    assert b.connect == Decimal("0.05") and b.rate.connect == 0
    assert [(s.start, s.end, s.per_minute, s.surcharge) for s in b.segments] == [
        (0, 126, Decimal("0.05"), Decimal("0.03"))]
    assert engine.surcharges_for(ctx) == b.surcharges


def test_a_grant_pays_the_surcharges_too():
    ctx = ctx_of(SURCHARGED, "442071234567", access="18005550100")
    # (1.00 - 0.05) at 0.08/min is 712.5 s; the last whole 6 s step ends at 708
    assert allowed_seconds(ctx, T0, Decimal("1.00"), 86400) == 708
    assert call_cost(ctx, T0, 708) <= Decimal("1.00") < call_cost(ctx, T0, 709)
    assert allowed_seconds(ctx, T0, Decimal("0.0899"), 86400) == 0    # 0.05 + 60 s at 0.08
    plain = ctx_of(SURCHARGED, "442071234567")
    assert allowed_seconds(plain, T0, Decimal("1.00"), 86400) == 1200
