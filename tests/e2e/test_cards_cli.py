"""The card tools through the kondge command, against the running service."""

import json
import os
import stat

from openpyxl import load_workbook
from pypdf import PdfReader


def ok(service, *args):
    r = service.kondge(*args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_issue_topup_refill_stats_statement(service, tmp_path):
    env = dict(service.env, KONDGE_OPERATOR="carol")
    ok(service, "categories", "add", "cli-usd-5", "--face-value", "5.00", "--currency", "USD",
       "--validity", "after-issue", "--valid-days", "90", "--pin-length", "5")
    ok(service, "categories", "add", "cli-voucher-2", "--face-value", "2.00", "--kind", "voucher")
    out = tmp_path / "cli.xlsx"
    batch = ok(service, "cards", "issue", "--category", "cli-usd-5", "--count", "25",
               "--batch", "cli-b1", "--out", str(out))
    assert batch["count"] == 25 and "pieces" not in batch
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    sheet = load_workbook(out)["cli-b1"]
    header, first = [c.value for c in sheet[1]], [c.value for c in sheet[2]]
    assert header == ["serial", "number", "pin", "face_value", "currency", "expiry", "batch"]
    assert sheet.max_row == 26 and len(first[2]) == 5 and first[6] == "cli-b1"
    again = service.kondge("cards", "issue", "--category", "cli-usd-5", "--count", "1",
                           "--out", str(out))
    assert again.returncode == 1 and "exists" in again.stderr      # never overwrite PINs

    top = [service.kondge("cards", "topup", "--batch", "cli-b1", "--amount", "1.25",
                          "--currency", "USD", "--operation-id", "cli-op-1", "--json", env=env)
           for _ in range(2)]
    assert [json.loads(r.stdout)["changed"] for r in top] == [25, 0]
    number = first[1]
    assert ok(service, "cards", "show", number)["balance"] == "6.25"

    vout = tmp_path / "v.xlsx"
    ok(service, "cards", "issue", "--category", "cli-voucher-2", "--count", "1", "--out", str(vout))
    vrow = [c.value for c in load_workbook(vout).active[2]]
    refill = ok(service, "cards", "refill", "--card", number, "--voucher", vrow[1], "--pin", vrow[2])
    assert refill["balance"] == "8.25"
    twice = service.kondge("cards", "refill", "--card", number, "--voucher", vrow[1],
                           "--pin", vrow[2])
    assert twice.returncode == 1 and "used already" in twice.stderr

    stats = ok(service, "cards", "stats", "--batch", "cli-b1", "--xlsx", str(tmp_path / "s.xlsx"))
    assert stats == [{"group": "cli-b1", "currency": "USD", "issued": 25, "activated": 25,
                      "used": 0, "remaining_value": "158.25", "expired_value": "0"}]
    log = ok(service, "audit", "list", "--action", "top-up")
    assert [(e["operator"], e["count"]) for e in log[:2]] == [("carol", 0), ("carol", 25)]

    pdf = tmp_path / "st.pdf"
    st = ok(service, "cards", "statement", number, "--from", "2000-01-01", "--to", "2100-01-01",
            "--out", str(pdf))
    assert st["closing"] == "8.25" and st["credits"] == "8.25"      # 5.00 issue + 1.25 + 2.00
    text = PdfReader(pdf).pages[0].extract_text()
    assert number in text and "8.2500 USD" in text


def test_cdr_export_and_usage(service, tmp_path):
    out = tmp_path / "cdrs.xlsx"
    r = ok(service, "cdrs", "export", "--gateway", "no-such-gw", "--out", str(out))
    assert r["cdrs"] == 0 and load_workbook(out)["cdrs"].max_row == 1
    assert service.kondge("cdrs", "list", "--destination", "44x").returncode == 2
    assert service.kondge("cards", "suspend").returncode == 1            # no selection
    assert service.kondge("cards", "issue", "--category", "nope", "--count", "1",
                          "--out", str(tmp_path / "x.xlsx")).returncode == 1
    assert not (tmp_path / "x.xlsx").exists()
    assert service.kondge("categories", "show", "nope").returncode == 1
