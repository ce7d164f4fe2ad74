from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kondge_billing.money import MoneyError, round_money, to_decimal
from kondge_billing.rating import Rate, allowed_seconds, billed_seconds, call_cost, prefixes_of


def rate(price="0.15", connect="0", initial=60, increment=6, decimals=4, rounding="up"):
    return Rate(tariff_id=1, prefix="44", price_per_minute=Decimal(price),
                connect_charge=Decimal(connect), initial_block=initial, increment=increment,
                currency="USD", decimals=decimals, rounding=rounding)


@pytest.mark.parametrize("seconds, billed", [
    (0, 0), (1, 60), (60, 60), (61, 66), (66, 66), (67, 72), (125, 126)])
def test_billed_seconds_initial_block_then_increments(seconds, billed):
    assert billed_seconds(rate(), seconds) == billed


@pytest.mark.parametrize("price, connect, seconds, cost", [
    ("0.15", "0", 125, "0.3150"),       # 126 s at 0.15/min
    ("0.02", "0", 1, "0.0200"),          # a one-second call pays the initial block
    ("0.02", "0", 0, "0.0000"),          # unanswered: nothing, not even the connect charge
    ("0.05", "0.10", 61, "0.1550"),      # connect + 66 s at 0.05/min
    ("0.07", "0", 7, "0.0700"),
])
def test_call_cost_examples(price, connect, seconds, cost):
    assert call_cost(rate(price, connect), seconds) == Decimal(cost)


def test_cost_rounds_once_with_the_named_mode():
    # 0.013/min for 66 s = 0.0143 exactly; up to 2 decimals -> 0.02, half-up -> 0.01
    assert call_cost(rate("0.013", decimals=2, rounding="up"), 61) == Decimal("0.02")
    assert call_cost(rate("0.013", decimals=2, rounding="half-up"), 61) == Decimal("0.01")
    assert call_cost(rate("0.013", decimals=2, rounding="down"), 61) == Decimal("0.01")


def test_allowed_seconds_demo_uk_mobile():
    # 10.00 at 0.15/min: 4000 s would cost exactly 10; the last whole block ends at 3996.
    assert allowed_seconds(rate(), Decimal("10.00"), 86400) == 3996
    assert call_cost(rate(), 3996) <= Decimal("10.00") < call_cost(rate(), 3997)


def test_balance_below_first_block_allows_nothing():
    assert allowed_seconds(rate("0.15"), Decimal("0.1499"), 86400) == 0
    assert allowed_seconds(rate("0.15"), Decimal("0.15"), 86400) == 60


def test_initial_block_larger_than_increment_never_overspends():
    r = rate("1.00", initial=60, increment=1)
    t = allowed_seconds(r, Decimal("0.99"), 86400)
    assert t == 0
    t = allowed_seconds(r, Decimal("1.50"), 86400)
    assert t == 90 and call_cost(r, t) == Decimal("1.5000")


def test_free_destination_is_capped():
    assert allowed_seconds(rate("0"), Decimal("1"), 7200) == 7200


def test_prefixes_longest_first():
    assert prefixes_of("4470") == ["4470", "447", "44", "4"]
    assert prefixes_of("") == []


def test_money_refuses_float():
    with pytest.raises(MoneyError):
        to_decimal(0.1)
    with pytest.raises(MoneyError):
        to_decimal("ten")
    with pytest.raises(MoneyError):
        round_money(Decimal("1"), 2, "bankers")


rates = st.builds(
    rate,
    price=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("5"), places=4).map(str),
    connect=st.decimals(min_value=Decimal("0"), max_value=Decimal("1"), places=4).map(str),
    initial=st.integers(1, 120), increment=st.integers(1, 60),
    decimals=st.integers(0, 6), rounding=st.sampled_from(["up", "half-up", "down"]))
balances = st.decimals(min_value=Decimal("0"), max_value=Decimal("500"), places=4)


@settings(max_examples=300, deadline=None)
@given(rates, st.integers(0, 20000), st.integers(0, 600))
def test_cost_never_decreases_with_duration(r, t, extra):
    assert call_cost(r, t) <= call_cost(r, t + extra)


@settings(max_examples=300, deadline=None)
@given(rates, balances)
def test_granted_time_is_the_largest_that_fits(r, balance):
    cap = 86400
    t = allowed_seconds(r, balance, cap)
    if t == 0:
        assert call_cost(r, 1) > balance
        return
    assert call_cost(r, t) <= balance                 # never a second the balance cannot pay
    if t < cap:
        assert call_cost(r, t + 1) > balance          # and not one second less than it can
