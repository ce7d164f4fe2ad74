"""Card numbers, PINs and the XLSX writer: the pure parts of batch issuance."""

import os
import stat
import zipfile
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, strategies as st
from openpyxl import load_workbook

from kondge_billing.store import issuance
from kondge_billing import xlsx
from kondge_billing.identifiers import card_number_problem, luhn_digit, luhn_valid

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)


@given(st.text(alphabet="0123456789", min_size=1, max_size=19))
def test_luhn_digit_makes_any_body_valid(body):
    assert luhn_valid(body + luhn_digit(body))
    wrong = str((int(luhn_digit(body)) + 1) % 10)
    assert not luhn_valid(body + wrong)


@pytest.mark.parametrize("length", [8, 12, 20])
def test_new_numbers_pass_the_call_path_check(length):
    numbers = issuance.new_numbers(500, length)
    assert len(set(numbers)) == 500
    for number in numbers:
        assert len(number) == length and number[0] != "0"
        assert card_number_problem(number, "luhn") is None


def test_numbers_are_not_sequential():
    numbers = [int(n) for n in issuance.new_numbers(200)]
    gaps = {b - a for a, b in zip(numbers, numbers[1:])}
    assert len(gaps) > 190          # no fixed step from one card to the next


def test_new_numbers_avoid_taken_ones():
    taken = set(issuance.new_numbers(50, 8))
    assert not taken & set(issuance.new_numbers(300, 8, taken=taken))


def test_pins_have_the_length_and_vary():
    pins = [issuance.new_pin(6) for _ in range(300)]
    assert all(len(p) == 6 and p.isdigit() for p in pins)
    assert len(set(pins)) > 250


@pytest.mark.parametrize("validity, expected", [
    ({"validity": "none"}, None),
    ({"validity": "fixed", "valid_until": NOW + timedelta(days=3)}, NOW + timedelta(days=3)),
    ({"validity": "after-issue", "valid_days": 30}, NOW + timedelta(days=30)),
    ({"validity": "after-first-use", "valid_days": 30}, None),
])
def test_expiry_at_issue(validity, expected):
    assert issuance.expiry_at_issue(validity, NOW) == expected


def test_xlsx_is_a_private_table(tmp_path):
    out = tmp_path / "batch.xlsx"
    batch = {"batch": "b-1", "face_value": Decimal("10.00"), "currency": "USD",
             "expires_at": NOW, "validity": "fixed",
             "pieces": [issuance.Issued(100001 + i, f"00000000{i}", "0123") for i in range(3)]}
    assert xlsx.write_table(out, "b-1", issuance.PRINT_COLUMNS, issuance.print_rows(batch)) == 3
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    ws = load_workbook(out)["b-1"]
    assert [c.value for c in ws[1]] == issuance.PRINT_COLUMNS
    assert [c.value for c in ws[2]] == [100001, "000000000", "0123", 10, "USD", "2026-01-15", "b-1"]
    assert list(ws.tables) == ["b_1"] and ws.tables["b_1"].ref == "A1:G4"
    assert [c.name for c in ws.tables["b_1"].tableColumns] == issuance.PRINT_COLUMNS


def test_xlsx_times_are_utc_and_empty_export_has_header(tmp_path):
    assert xlsx.cell(datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))) == \
        datetime(2026, 1, 1, 10)
    assert xlsx.cell(["a", "b"]) == "a,b"
    out = tmp_path / "empty.xlsx"
    assert xlsx.write_table(out, "cdrs", ["id", "charge"], []) == 0
    ws = load_workbook(out)["cdrs"]
    assert [c.value for c in ws[1]] == ["id", "charge"] and not ws.tables


@pytest.mark.parametrize("value", [
    "=1+1", '=HYPERLINK("http://x","y")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
    "\t=1", "\r=1", "  =1", "=cmd|' /C calc'!A0"])
def test_xlsx_writes_formula_like_strings_as_text(tmp_path, value):
    out = tmp_path / "x.xlsx"
    xlsx.write_table(out, "cdrs", ["id", "session"], [[1, value], [2, "plain"]])
    with zipfile.ZipFile(out) as book:
        assert b"<f>" not in book.read("xl/worksheets/sheet1.xml")
    rows = list(load_workbook(out)["cdrs"].iter_rows(min_row=2))
    assert rows[0][1].value == value.replace("\r", "\n")       # XML reads a CR as a newline
    assert rows[0][1].data_type == "s" and rows[0][1].quotePrefix
    assert rows[1][1].value == "plain" and not rows[1][1].quotePrefix
    assert rows[0][0].value == 1 and rows[0][0].data_type == "n"   # numbers stay numbers


def test_xlsx_keeps_control_characters_visible_instead_of_failing(tmp_path):
    out = tmp_path / "x.xlsx"
    assert xlsx.write_table(out, "cdrs", ["session"], [["a\x00b\x1bc"]]) == 1
    assert load_workbook(out)["cdrs"]["A2"].value == "a\\x00b\\x1bc"
