"""Identifiers: one rule each (identifiers.py)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kondge_billing import identifiers as ids


@given(st.text("0123456789", min_size=1, max_size=19))
def test_the_check_digit_makes_any_body_valid_and_a_changed_digit_invalid(body):
    number = body + ids.luhn_digit(body)
    assert ids.luhn_valid(number)
    assert ids.card_number_problem(number) is None if len(number) >= 4 else True
    last = number[-1]
    wrong = number[:-1] + str((int(last) + 1) % 10)
    assert not ids.luhn_valid(wrong)


@pytest.mark.parametrize("value, ok", [
    ("gw-1", True), ("a", True), ("A.b_c-9", True), ("-gw", False), ("", False),
    ("x" * 63, True), ("x" * 64, False), ("g w", False), ("gw\n", False), (None, False)])
def test_one_name_rule(value, ok):
    assert (ids.name_problem(value) is None) is ok


@pytest.mark.parametrize("value, ok", [("en", True), ("zho", True), ("EN", False),
                                        ("e", False), ("engl", False), ("e1", False),
                                        (None, False)])
def test_language_codes(value, ok):
    assert (ids.language_problem(value) is None) is ok


def test_pins_are_digits():
    assert ids.pin_problem("1234") is None
    assert ids.pin_problem("12a4") and ids.pin_problem("") and ids.pin_problem("1" * 17)
