"""The rating engine: worked examples, band crossings, steps, and properties."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from textwrap import dedent

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kondge_billing.money import MoneyError, round_money, to_decimal
from kondge_billing.tariffs import engine, schema
from kondge_billing.tariffs.engine import Rate, RatingContext, Step, allowed_seconds, call_cost
from kondge_billing.tariffs.resolve import context_for

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
