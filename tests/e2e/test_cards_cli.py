"""The card tools through the kondge command, against the running service."""

import json
import os
import stat

import pytest
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


# --- what would later bill a call wrongly is refused ---------------------------------------

def refused(service, *args, code=1):
    r = service.kondge(*args)
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    return r.stderr


def issue_two(service, tmp_path, category, batch):
    return ok(service, "cards", "issue", "--category", category, "--count", "2", "--batch", batch,
              "--out", str(tmp_path / f"{batch}.xlsx"))


def numbers_of(tmp_path, batch):
    sheet = load_workbook(tmp_path / f"{batch}.xlsx")[batch]
    return [row[1] for row in sheet.iter_rows(min_row=2, values_only=True)]


def test_a_move_across_currency_or_billing_is_refused_and_changes_nothing(service, tmp_path):
    ok(service, "categories", "add", "mv-usd", "--face-value", "10.00", "--currency", "USD")
    ok(service, "categories", "add", "mv-eur-post", "--currency", "EUR", "--billing", "postpaid",
       "--credit-limit", "50")
    ok(service, "categories", "add", "mv-usd-post", "--currency", "USD", "--billing", "postpaid",
       "--credit-limit", "50")
    ok(service, "categories", "add", "mv-usd-2", "--face-value", "20.00", "--currency", "USD")
    issue_two(service, tmp_path, "mv-usd", "mv-b")
    before = [ok(service, "cards", "show", n) for n in numbers_of(tmp_path, "mv-b")]
    text = refused(service, "cards", "move", "--batch", "mv-b", "--to", "mv-eur-post")
    assert "2 selected cards (category mv-usd) are in USD, category mv-eur-post is in EUR" in text
    assert "issue new cards in mv-eur-post, or move these into a category in USD" in text
    text = refused(service, "cards", "move", "--batch", "mv-b", "--to", "mv-usd-post")
    assert "are prepaid, category mv-usd-post is postpaid: a card keeps its billing model" in text
    assert [ok(service, "cards", "show", n) for n in numbers_of(tmp_path, "mv-b")] == before
    assert not [e for e in ok(service, "audit", "list", "--action", "move")
                if e["selection"].get("batch") == "mv-b"]
    moved = ok(service, "cards", "move", "--batch", "mv-b", "--to", "mv-usd-2")
    assert moved["changed"] == 2


def test_a_category_with_cards_keeps_its_currency_and_billing(service, tmp_path):
    ok(service, "categories", "add", "fix-usd", "--face-value", "1.00")
    issue_two(service, tmp_path, "fix-usd", "fix-b")
    text = refused(service, "categories", "modify", "fix-usd", "--currency", "EUR")
    assert "category fix-usd has 2 cards: its currency cannot change from USD to EUR" in text
    text = refused(service, "categories", "modify", "fix-usd", "--billing", "postpaid",
                   "--credit-limit", "5")
    assert "has 2 cards: its billing cannot change from prepaid to postpaid" in text
    assert ok(service, "categories", "show", "fix-usd")["currency"] == "USD"


@pytest.mark.parametrize("option, typed, says", [
    ("--balance", "1e400", "not a plain decimal"),
    ("--balance", "NaN", "not a plain decimal"),
    ("--balance", "Infinity", "not a plain decimal"),
    ("--balance", "-0", "negative zero"),
    ("--balance", "0." + "0" * 29 + "1", "more than 8 digits after the point"),
    ("--balance", "1" * 13, "more than 12 digits before the point"),
    ("--currency", "XYZ", "no active ISO 4217 currency code"),
    ("--currency", "usd", "written in capitals: USD"),
])
def test_cards_add_refuses_absurd_amounts_and_currencies_as_usage(service, option, typed, says):
    args = {"--number": "3000000202", "--pin": "1234", "--balance": "5", "--currency": "USD"}
    args[option] = typed
    text = refused(service, "cards", "add", *[x for kv in args.items() for x in kv], code=2)
    assert f"argument {option}: " in text and says in text
    assert service.kondge("cards", "show", "3000000202").returncode == 1


@pytest.mark.parametrize("args, says", [
    (["categories", "add", "bad-1", "--face-value", "1e400"], "--face-value: '1e400'"),
    (["categories", "add", "bad-1", "--credit-limit", "NaN"], "--credit-limit: 'NaN'"),
    (["categories", "add", "bad-1", "--currency", "XYZ"], "--currency: 'XYZ'"),
    (["categories", "modify", "standard", "--currency", "eur"], "written in capitals: EUR"),
    (["cards", "topup", "--batch", "cli-b1", "--amount", "Infinity", "--currency", "USD"],
     "--amount: 'Infinity'"),
    (["cards", "topup", "--batch", "cli-b1", "--amount", "1", "--currency", "usd"],
     "--currency: 'usd'"),
])
def test_other_commands_refuse_them_as_usage_too(service, args, says):
    assert says in refused(service, *args, code=2)
    assert service.kondge("categories", "show", "bad-1").returncode == 1


def test_amounts_within_the_rules_but_refused_by_the_currency_or_sign(service):
    text = refused(service, "cards", "add", "--number", "3000000202", "--pin", "1234",
                   "--balance", "10.005", "--currency", "USD")
    assert "balance: 10.005 is finer than USD allows (2 decimals)" in text
    text = refused(service, "categories", "add", "jpy-x", "--currency", "JPY",
                   "--face-value", "100.5")
    assert "face value: 100.5 is finer than JPY allows (whole units)" in text


EUR_TARIFF = """\
tariff: cli-eur
default: false
valid_from: 2000-01-01T00:00:00+00:00
currency: EUR
decimals: 4
rounding: up
timezone: UTC
defaults: {connect: 0, initial: 60, increment: 6}
destinations:
  UK: [44]
plans:
  - name: standard
    priority: 0
    rates:
      - {destination: UK, per_minute: 0.05}
"""


def test_cards_and_categories_name_a_tariff_of_their_currency(service, tmp_path):
    path = tmp_path / "cli-eur.yaml"
    path.write_text(EUR_TARIFF)
    ok(service, "tariffs", "load", str(path))
    env = dict(service.env, KONDGE_OPERATOR="tariff-op")
    assert "no tariff named 'nope'" in refused(service, "categories", "add", "t-usd",
                                               "--tariff", "nope")
    assert "tariff: cli-eur prices in EUR, category t-usd is in USD" in refused(
        service, "categories", "add", "t-usd", "--tariff", "cli-eur")
    r = service.kondge("categories", "add", "t-eur", "--currency", "EUR", "--face-value", "5.00",
                       "--tariff", "cli-eur", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tariff"] == "cli-eur"
    assert ok(service, "categories", "show", "t-eur")["tariff"] == "cli-eur"
    assert [c["tariff"] for c in ok(service, "categories", "list") if c["name"] == "t-eur"] == [
        "cli-eur"]
    assert "tariff" in service.kondge("categories", "list").stdout.splitlines()[0]

    assert "cli-eur prices in EUR, card 3000000210 is in USD" in refused(
        service, "cards", "add", "--number", "3000000210", "--pin", "1234", "--balance", "5",
        "--currency", "USD", "--tariff", "cli-eur")
    card = ok(service, "cards", "add", "--number", "3000000210", "--pin", "1234", "--balance",
              "5", "--currency", "EUR", "--category", "t-eur", "--tariff", "cli-eur")
    assert (card["tariff"], card["category_tariff"]) == ("cli-eur", "cli-eur")
    shown = service.kondge("cards", "show", "3000000210").stdout
    assert "tariff: cli-eur" in shown and "category_tariff: cli-eur" in shown

    ok(service, "categories", "add", "t-usd", "--face-value", "1.00")
    assert "cli-eur prices in EUR, category t-usd is in USD" in refused(
        service, "cards", "issue", "--category", "t-usd", "--count", "1", "--tariff", "cli-eur",
        "--out", str(tmp_path / "t.xlsx"))
    assert not (tmp_path / "t.xlsx").exists()
    batch = ok(service, "cards", "issue", "--category", "t-eur", "--count", "1", "--tariff",
               "cli-eur", "--out", str(tmp_path / "t.xlsx"))
    assert batch["tariff"] == "cli-eur"

    gone = ok(service, "categories", "modify", "t-eur", "--no-tariff", "--operator", "tariff-op")
    assert gone["tariff"] is None
    assert refused(service, "categories", "modify", "t-eur", "--tariff", "cli-eur",
                   "--no-tariff", code=2)
    log = [e for e in ok(service, "audit", "list", "--limit", "500")
           if e["operator"] == "tariff-op"]
    assert [e["action"] for e in reversed(log)] == ["add category", "modify category"]
    assert log[0]["details"]["changes"] == {"tariff": {"from": "cli-eur"}}
