"""currencies: active ISO 4217 codes in capitals, and amounts no finer than their minor unit."""

from decimal import Decimal

import pytest

from kondge_billing.rating.currencies import (MINOR_UNITS, NOT_MONEY, currency_problem,
                                              minor_unit_problem)


@pytest.mark.parametrize("code", ["USD", "EUR", "GBP", "JPY", "KWD", "CLF", "XCG", "ZWG",
                                  "SLE", "VES", "XOF"])
def test_active_codes_are_currencies(code):
    assert currency_problem(code) is None


@pytest.mark.parametrize("code, says", [
    ("usd", "written in capitals: USD"),
    ("Eur", "written in capitals: EUR"),
    ("XYZ", "no active ISO 4217"),
    ("US", "no active ISO 4217"),
    ("USDD", "no active ISO 4217"),
    ("", "no active ISO 4217"),
    ("U$D", "no active ISO 4217"),
    ("BGN", "no active ISO 4217"),        # withdrawn 2026-01 (Bulgaria uses EUR)
    ("HRK", "no active ISO 4217"),
    ("ANG", "no active ISO 4217"),        # replaced by XCG
    ("XAU", "without minor units"),
    ("XTS", "without minor units"),
    ("XXX", "without minor units"),
    (None, "no currency code"),
    ("X" * 5000, "no active ISO 4217"),
])
def test_anything_else_is_refused(code, says):
    problem = currency_problem(code)
    assert problem and says in problem and len(problem) < 200


def test_the_table_is_iso_shaped():
    assert all(len(c) == 3 and c.isascii() and c.isupper() for c in MINOR_UNITS)
    assert not NOT_MONEY & MINOR_UNITS.keys()
    assert set(MINOR_UNITS.values()) == {0, 2, 3, 4}
    assert (MINOR_UNITS["USD"], MINOR_UNITS["JPY"], MINOR_UNITS["BHD"],
            MINOR_UNITS["CLF"]) == (2, 0, 3, 4)
    assert 150 < len(MINOR_UNITS) < 200


@pytest.mark.parametrize("amount, code, finer", [
    ("10.00", "USD", False), ("10.5", "USD", False), ("10.005", "USD", True),
    ("1000", "JPY", False), ("1000.00", "JPY", False), ("1000.5", "JPY", True),
    ("1.125", "KWD", False), ("1.1255", "KWD", True),
    ("0", "EUR", False), ("-0.01", "EUR", False),
])
def test_an_amount_is_no_finer_than_its_currency(amount, code, finer):
    assert bool(minor_unit_problem(Decimal(amount), code)) == finer
