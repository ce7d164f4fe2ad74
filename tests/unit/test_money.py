"""money.operator_amount: the one door for amounts an operator types."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kondge_billing.rating.money import (MAX_DECIMALS, MAX_INTEGER_DIGITS, MoneyError,
                                         operator_amount)


@pytest.mark.parametrize("typed, amount", [
    ("10.00", Decimal("10.00")),
    ("0", Decimal("0")),
    ("7", Decimal("7")),
    ("-1", Decimal("-1")),                               # negative: the caller's rule
    (" 5.5 ", Decimal("5.5")),
    ("123456789012.12345678", Decimal("123456789012.12345678")),
    (Decimal("10.00"), Decimal("10.00")),                # kept as written
    (Decimal("1E+3"), Decimal("1000")),
    (Decimal("10.0000000000"), Decimal("10")),           # trailing zeros do not count
    (42, Decimal("42")),
])
def test_plain_decimals_are_amounts(typed, amount):
    got = operator_amount(typed)
    assert got == amount and str(got) == str(amount)


@pytest.mark.parametrize("typed, says", [
    ("1e400", "not a plain decimal"),
    ("1E2", "not a plain decimal"),
    ("NaN", "not a plain decimal"),
    ("nan", "not a plain decimal"),
    ("Infinity", "not a plain decimal"),
    ("-Infinity", "not a plain decimal"),
    ("sNaN", "not a plain decimal"),
    ("+5", "not a plain decimal"),
    ("1_000", "not a plain decimal"),
    ("1,000.00", "not a plain decimal"),
    ("10,50", "not a plain decimal"),
    ("1 000", "not a plain decimal"),
    ("\u0661\u0662", "not a plain decimal"),             # Arabic-Indic digits
    (".5", "not a plain decimal"),
    ("5.", "not a plain decimal"),
    ("", "not a plain decimal"),
    ("0x10", "not a plain decimal"),
    ("-0", "negative zero"),
    ("-0.00", "negative zero"),
    (Decimal("-0"), "negative zero"),
    ("0." + "0" * 29 + "1", "more than 8 digits after the point"),
    ("1.123456789", "more than 8 digits after the point"),
    ("1234567890123", "more than 12 digits before the point"),
    ("9" * 400, "more than 12 digits before the point"),
    (Decimal("1E+400"), "more than 12 digits before the point"),
    (Decimal("NaN"), "not a plain decimal"),
    (1.5, "not an amount"),
    (True, "not an amount"),
    (None, "not an amount"),
])
def test_anything_else_is_refused_with_the_reason(typed, says):
    with pytest.raises(MoneyError, match=says):
        operator_amount(typed)


def test_a_long_input_is_cut_in_the_message():
    with pytest.raises(MoneyError) as err:
        operator_amount("x" * 4096)
    assert len(str(err.value)) < 300


@given(st.decimals(allow_nan=False, allow_infinity=False, places=MAX_DECIMALS,
                   min_value=1 - Decimal(10) ** MAX_INTEGER_DIGITS,
                   max_value=Decimal(10) ** MAX_INTEGER_DIGITS - 1))
def test_every_amount_in_bounds_reads_back_exactly(value):
    text = format(value, "f")
    if value.is_zero() and value.is_signed():
        return
    assert operator_amount(text) == value


@given(st.text(max_size=30))
def test_any_text_is_an_exact_amount_or_a_money_error(text):
    try:
        amount = operator_amount(text)
    except MoneyError:
        return
    assert amount.is_finite() and not (amount.is_zero() and amount.is_signed())
    assert -amount.as_tuple().exponent <= MAX_DECIMALS
    assert abs(amount) < Decimal(10) ** MAX_INTEGER_DIGITS


def test_money_carries_its_currency_and_never_mixes_two():
    from kondge_billing.rating.money import Money
    ten, two = Money(Decimal("10.00"), "USD"), Money(Decimal("2.5"), "USD")
    assert (ten - two).amount == Decimal("7.50") and (ten + two).currency == "USD"
    assert two < ten and ten >= two and (-two).amount == Decimal("-2.5")
    assert str(Money(Decimal("9.999"), "EUR")) == "9.99 EUR"          # announced rounded down
    euros = Money(Decimal("1"), "EUR")
    for mixed in (lambda: ten + euros, lambda: ten < euros, lambda: ten.in_currency("EUR")):
        with pytest.raises(MoneyError, match="do not mix"):
            mixed()
    for bad in ((1.5, "USD"), (Decimal("NaN"), "USD"), (Decimal("1"), "usd"),
                (Decimal("1"), "US")):
        with pytest.raises(MoneyError):
            Money(*bad)
    with pytest.raises(Exception):
        ten.amount = Decimal("0")                                     # immutable
