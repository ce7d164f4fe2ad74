"""Cards as a product against a real PostgreSQL: categories, issuance, batch
changes, refills, expiry, stats, statements and the report views."""

import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import psycopg2
import psycopg2.errors
import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from kondge_billing.store import (audit, batches, cards, categories, issuance, reports, statements,
                                  vouchers)
from kondge_billing.operations import demo
from kondge_billing import xlsx
from kondge_billing.store.batches import Selection
from kondge_billing.store.pins import pin_matches
from kondge_billing.progress import Progress
from kondge_billing.identifiers import luhn_valid
from kondge_billing.edge.request import access_request, accounting_record

NOW = datetime.now(timezone.utc)
OP = "alice"


def quiet(label, total):
    return Progress(label, total, enabled=False)


def tx(db, work):
    return db.transaction(work)


def rows(db, sql, *params):
    return db.run(lambda cur: (cur.execute(sql, params), cur.fetchall())[1])


def one(db, sql, *params):
    return rows(db, sql, *params)[0]


def mismatches(db):
    return rows(db, "SELECT * FROM kondge.v_balance_mismatch") + \
        rows(db, "SELECT * FROM reports.reconciliation")


def add_category(db, name, **fields):
    return tx(db, lambda cur: categories.add(cur, name, **fields))


def issue(db, pin_key, category, count, batch=None, **kw):
    return tx(db, lambda cur: issuance.issue(cur, pin_key, category, count, batch, OP,
                                             progress=quiet, **kw))


@pytest.fixture
def shop(db, pin_key):
    """The demo set (tariff, gateway) plus a card and a voucher category."""
    db.run(lambda cur: demo.load(cur, pin_key))
    add_category(db, "usd-10", face_value="10.00", currency="USD", pin_length=6)
    add_category(db, "refill-5", face_value="5.00", currency="USD", kind="voucher")
    return db


# --- categories ------------------------------------------------------------------

def test_category_add_modify_and_every_problem_at_once(db):
    c = add_category(db, "eur-after-use", face_value="20", currency="EUR",
                     validity="after-first-use", valid_days=30, language="fr", max_calls=2)
    assert c["face_value"] == Decimal("20") and c["valid_days"] == 30 and c["kind"] == "card"
    changed = tx(db, lambda cur: categories.modify(cur, "eur-after-use", billing="postpaid",
                                                   credit_limit="50.00"))
    assert changed["billing"] == "postpaid" and changed["credit_limit"] == Decimal("50.00")
    assert changed["language"] == "fr"             # untouched fields stay
    with pytest.raises(categories.CategoryError) as err:
        add_category(db, "-bad", face_value="-1", currency="usd", validity="fixed",
                     pin_length=3, credit_limit="5")
    for word in ("name:", "face value:", "currency:", "valid until:", "PIN length:",
                 "credit limit:"):
        assert word in str(err.value)
    with pytest.raises(categories.CategoryError, match="exists already"):
        add_category(db, "eur-after-use")
    assert [c["name"] for c in db.run(categories.all_categories)] == ["eur-after-use",
                                                                      "standard"]


# --- issuance ---------------------------------------------------------------------

def test_issuing_2000_cards(shop, pin_key, tmp_path):
    batch = issue(shop, pin_key, "usd-10", 2000, "b-2000")
    pieces = batch["pieces"]
    assert len(pieces) == 2000 == len({p.number for p in pieces})
    assert all(luhn_valid(p.number) and len(p.pin) == 6 for p in pieces)
    stored = {r["number"]: r for r in rows(
        shop, """SELECT c.number, c.pin_hash, c.balance, c.serial, c.status, c.activated_at,
                        c.language
                   FROM kondge.card c JOIN kondge.batch b ON b.id = c.batch_id
                  WHERE b.name = 'b-2000'""")}
    assert len(stored) == 2000
    for p in pieces[:200]:
        row = stored[p.number]
        assert pin_matches(pin_key, p.number, p.pin, row["pin_hash"])
        assert p.pin not in row["pin_hash"] and row["serial"] == p.serial
        assert row["balance"] == Decimal("10.00") and row["status"] == "active"
        assert row["activated_at"] is not None
    assert sorted(p.serial for p in pieces) == [p.serial for p in pieces]
    ledger = one(shop, """SELECT count(*) AS n, sum(amount) AS total FROM kondge.ledger_entry
                           WHERE kind = 'issue' AND note = 'batch b-2000'""")
    assert ledger["n"] == 2000 and ledger["total"] == Decimal("20000.00")
    assert mismatches(shop) == []
    entry = one(shop, "SELECT * FROM kondge.audit_log WHERE action = 'issue cards'")
    assert entry["count"] == 2000 and entry["operator"] == OP

    out = tmp_path / "b.xlsx"
    xlsx.write_table(out, batch["batch"], issuance.PRINT_COLUMNS, issuance.print_rows(batch))
    sheet = load_workbook(out, read_only=True)["b-2000"]
    first = list(sheet.iter_rows(min_row=2, max_row=2, values_only=True))[0]
    assert first == (pieces[0].serial, pieces[0].number, pieces[0].pin, 10, "USD", "no expiry", "b-2000")


def test_issue_refusals(shop, pin_key):
    with pytest.raises(issuance.IssueError, match="no category"):
        issue(shop, pin_key, "nope", 5)
    issue(shop, pin_key, "usd-10", 3, "same")
    with pytest.raises(issuance.IssueError, match="exists already"):
        issue(shop, pin_key, "usd-10", 3, "same")
    add_category(shop, "over", face_value="1", validity="fixed",
                 valid_until=NOW - timedelta(days=1))
    with pytest.raises(issuance.IssueError, match="has passed"):
        issue(shop, pin_key, "over", 3)
    assert one(shop, "SELECT count(*) AS n FROM kondge.card WHERE batch_id IS NOT NULL")["n"] == 3


def test_validity_fixed_and_after_issue_set_at_issue(shop, pin_key):
    until = NOW + timedelta(days=100)
    add_category(shop, "fixed", face_value="1", validity="fixed", valid_until=until)
    add_category(shop, "month", face_value="1", validity="after-issue", valid_days=30)
    fixed = issue(shop, pin_key, "fixed", 2)
    month = issue(shop, pin_key, "month", 2)
    assert fixed["expires_at"] == until
    assert timedelta(days=29) < month["expires_at"] - NOW < timedelta(days=31)
    got = rows(shop, "SELECT DISTINCT expires_at FROM kondge.card WHERE category = 'month'")
    assert [r["expires_at"] for r in got] == [month["expires_at"]]


# --- a call through the real call path -------------------------------------------------

def call(billing, piece, seconds, conf, dest="447911123456"):
    """An authorised call of `piece` (an issued card: number and PIN) that talked `seconds`."""
    grant = authorise(billing, piece, conf, dest)
    assert grant.seconds >= seconds or seconds == 0
    return stop(billing, piece, seconds, conf, dest)


def authorise(billing, piece, conf, dest="447911123456"):
    return billing.authorize(billing.gateways.get("127.0.0.1"), access_request((
        ("User-Name", piece.number), ("User-Password", piece.pin),
        ("Called-Station-Id", dest), ("h323-conf-id", f"h323-conf-id={conf}"),
        ("Kondge-Gateway-Address", "127.0.0.1"))))


def stop(billing, piece, seconds, conf, dest="447911123456"):
    """The billed leg's Stop of an authorised call."""
    number = piece.number
    pairs = {"Acct-Status-Type": "Stop", "Acct-Session-Id": conf[-8:], "User-Name": number,
             "Calling-Station-Id": "15551234567", "Called-Station-Id": dest,
             "h323-conf-id": f"h323-conf-id={conf}", "h323-call-origin": "h323-call-origin=originate",
             "Acct-Session-Time": str(seconds), "Kondge-Gateway-Address": "127.0.0.1"}
    # received now, not when the suite started: a call's day is its own
    rec = accounting_record(tuple(pairs.items()), datetime.now(timezone.utc))
    return billing.account(billing.gateways.get(rec.gateway_address), rec)


def test_first_use_starts_the_validity_clock(shop, pin_key, billing):
    add_category(shop, "after-use", face_value="10", validity="after-first-use", valid_days=7)
    piece = issue(shop, pin_key, "after-use", 1)["pieces"][0]
    number = piece.number
    card = one(shop, "SELECT expires_at, first_used_at FROM kondge.card WHERE number = %s", number)
    assert card["expires_at"] is None and card["first_used_at"] is None
    assert call(billing, piece, 60, "AAAA0001 0F4411D6 AB5591F0 CBF3D765").outcome == "charged"
    card = one(shop, "SELECT expires_at, first_used_at FROM kondge.card WHERE number = %s", number)
    assert card["expires_at"] - card["first_used_at"] == timedelta(days=7)
    call(billing, piece, 60, "AAAA0002 0F4411D6 AB5591F0 CBF3D765")
    again = one(shop, "SELECT expires_at FROM kondge.card WHERE number = %s", number)
    assert again["expires_at"] == card["expires_at"]          # only the first use counts
    assert mismatches(shop) == []


def test_a_first_charged_call_updates_its_card_once(shop, pin_key, billing, dsn):
    """The charge and the start of the validity clock are one UPDATE of the
    card (post_ledger's first use). Two, in one transaction, had the card's
    foreign keys checked again at the second: its category's row locked
    (FOR KEY SHARE) by every first call, the hottest row there is. So a
    first call's Stop does not wait for an operator's transaction that
    holds the category's row."""
    add_category(shop, "after-use", face_value="10", validity="after-first-use", valid_days=7)
    piece = issue(shop, pin_key, "after-use", 1)["pieces"][0]
    conf = "CCCC0001 0F4411D6 AB5591F0 CBF3D765"
    assert authorise(billing, piece, conf).seconds >= 60
    holder = psycopg2.connect(dsn)
    try:
        holder.cursor().execute("SELECT 1 FROM kondge.category WHERE name = 'after-use' "
                                "FOR UPDATE")
        done = {}

        def settle():
            try:
                done["out"] = stop(billing, piece, 60, conf)
            except Exception as exc:  # noqa: BLE001 - reported below
                done["error"] = exc
        worker = threading.Thread(target=settle)
        worker.start()
        worker.join(15)
        waited = worker.is_alive()
    finally:
        holder.rollback()
        holder.close()
    worker.join(60)
    assert not waited and "error" not in done, (
        f"the first call's Stop waited for its card's category row: {done.get('error')!r}")
    assert done["out"].outcome == "charged" and done["out"].charge > 0
    card = one(shop, "SELECT balance, expires_at, first_used_at FROM kondge.card "
                     "WHERE number = %s", piece.number)
    assert card["expires_at"] - card["first_used_at"] == timedelta(days=7)
    assert card["balance"] == Decimal("10") - done["out"].charge
    assert mismatches(shop) == []


def test_a_first_use_is_posted_with_one_card_only(shop, pin_key):
    pieces = issue(shop, pin_key, "usd-10", 2)["pieces"]
    ids = [one(shop, "SELECT id FROM kondge.card WHERE number = %s", p.number)["id"]
           for p in pieces]
    with pytest.raises(psycopg2.errors.InvalidParameterValue, match="one card only"):
        tx(shop, lambda cur: cur.execute(
            "SELECT * FROM kondge.post_ledger(%s, ARRAY[-1, -1]::numeric[], 'call', "
            "ARRAY['x1', 'x2'], '', now())", (ids,)))
    assert rows(shop, "SELECT 1 FROM kondge.card WHERE id = ANY (%s) AND first_used_at "
                      "IS NOT NULL", ids) == []


FREE_TARIFF = """
tariff: free-france
valid_from: 2020-01-01T00:00:00Z
currency: USD
defaults: {initial: 60, increment: 6}
destinations: {France: [33], UK: [44]}
plans:
  - name: standard
    priority: 0
    rates:
      - {destination: France, per_minute: 0}
      - {destination: UK, per_minute: 0.05}
"""


def test_an_answered_call_that_costs_nothing_is_a_first_use_too(shop, pin_key, billing, tmp_path):
    add_category(shop, "after-use", face_value="10", validity="after-first-use", valid_days=7)
    piece = issue(shop, pin_key, "after-use", 1)["pieces"][0]
    number = piece.number
    (tmp_path / "free.yaml").write_text(FREE_TARIFF)
    shop.run(lambda cur: (demo.load_tariff_file(cur, tmp_path / "free.yaml"), cur.execute(
        """UPDATE kondge.card SET tariff_id = (SELECT id FROM kondge.tariff
                                                WHERE name = 'free-france')
            WHERE number = %s""", (number,))))
    call(billing, piece, 0, "BBBB0001 0F4411D6 AB5591F0 CBF3D765", dest="442071234567")
    card = one(shop, "SELECT first_used_at FROM kondge.card WHERE number = %s", number)
    assert card["first_used_at"] is None                         # not answered
    out = call(billing, piece, 30, "BBBB0002 0F4411D6 AB5591F0 CBF3D765", dest="33123456")
    assert out.charge == 0                                       # a free destination
    card = one(shop, "SELECT expires_at, first_used_at FROM kondge.card WHERE number = %s", number)
    assert card["expires_at"] - card["first_used_at"] == timedelta(days=7)


# --- batch changes ----------------------------------------------------------------

def test_batch_changes_are_audited(shop, pin_key):
    batch = issue(shop, pin_key, "usd-10", 10, "b10", active=False)
    serials = [p.serial for p in batch["pieces"]]
    first_five = Selection(serial_from=serials[0], serial_to=serials[4])
    result = tx(shop, lambda cur: batches.change_status(cur, first_five, "activate", OP))
    assert (result["matched"], result["changed"]) == (5, 5)
    statuses = rows(shop, "SELECT status, count(*) AS n FROM kondge.card WHERE batch_id = %s "
                          "GROUP BY 1 ORDER BY 1", batch["batch_id"])
    assert [(r["status"], r["n"]) for r in statuses] == [("active", 5), ("inactive", 5)]
    two = Selection(numbers=(batch["pieces"][0].number, batch["pieces"][9].number))
    tx(shop, lambda cur: batches.change_status(cur, two, "cancel", OP))
    again = tx(shop, lambda cur: batches.change_status(cur, two, "activate", OP))
    assert again["changed"] == 0                   # a cancelled card stays cancelled
    log = db_audit(shop)
    assert [(e["action"], e["count"], e["operator"]) for e in log[:3]] == [
        ("activate", 0, OP), ("cancel", 2, OP), ("activate", 5, OP)]
    assert log[2]["selection"] == {"serial_from": serials[0], "serial_to": serials[4],
                                   "kind": "card"}


def db_audit(db):
    return db.run(lambda cur: audit.recent(cur, 10))


def test_extend_and_move(shop, pin_key):
    add_category(shop, "month", face_value="1", validity="after-issue", valid_days=30)
    add_category(shop, "premium", face_value="1")
    batch = issue(shop, pin_key, "month", 4, "m4")
    before = batch["expires_at"]
    sel = Selection(batch="m4")
    assert tx(shop, lambda cur: batches.extend(cur, sel, OP, days=10))["changed"] == 4
    got = one(shop, "SELECT DISTINCT expires_at FROM kondge.card WHERE batch_id = %s",
              batch["batch_id"])
    assert got["expires_at"] - before == timedelta(days=10)
    assert tx(shop, lambda cur: batches.move(cur, sel, OP, "premium"))["changed"] == 4
    assert one(shop, "SELECT count(*) AS n FROM kondge.card WHERE category = 'premium'")["n"] == 4
    with pytest.raises(batches.BatchError, match="for vouchers"):
        tx(shop, lambda cur: batches.move(cur, sel, OP, "refill-5"))
    with pytest.raises(batches.BatchError, match="say which cards"):
        tx(shop, lambda cur: batches.move(cur, Selection(), OP, "premium"))


def test_top_up_is_once_per_operation_id(shop, pin_key):
    issue(shop, pin_key, "usd-10", 3, "t3")
    sel = Selection(batch="t3")
    first = tx(shop, lambda cur: batches.top_up(cur, sel, OP, "2.50", "USD", "op-1"))
    again = tx(shop, lambda cur: batches.top_up(cur, sel, OP, "2.50", "USD", "op-1"))
    assert (first["changed"], again["changed"]) == (3, 0)
    totals = rows(shop, "SELECT DISTINCT balance FROM kondge.card c JOIN kondge.batch b "
                        "ON b.id = c.batch_id WHERE b.name = 't3'")
    assert [r["balance"] for r in totals] == [Decimal("12.50")]
    tx(shop, lambda cur: batches.top_up(cur, sel, OP, "1", "USD", "op-2"))
    assert one(shop, "SELECT count(*) AS n FROM kondge.ledger_entry WHERE kind = 'refill'")["n"] == 6
    assert mismatches(shop) == []
    with pytest.raises(batches.BatchError, match="in USD"):
        tx(shop, lambda cur: batches.top_up(cur, sel, OP, "1", "EUR", "op-3"))
    with pytest.raises(batches.BatchError, match="above zero"):
        tx(shop, lambda cur: batches.top_up(cur, sel, OP, "-1", "USD", "op-4"))


# --- refills ------------------------------------------------------------------------

def test_voucher_refills_a_card_once(shop, pin_key):
    card = issue(shop, pin_key, "usd-10", 1)["pieces"][0]
    voucher = issue(shop, pin_key, "refill-5", 1)["pieces"][0]
    assert one(shop, "SELECT count(*) AS n FROM kondge.card WHERE number = %s",
               voucher.number)["n"] == 0          # a voucher is no calling card
    wrong = tx(shop, lambda cur: vouchers.refill(cur, pin_key, card.number, voucher.number,
                                                 "0000" if voucher.pin != "0000" else "1111", OP))
    assert "wrong PIN" in wrong["refused"]
    done = tx(shop, lambda cur: vouchers.refill(cur, pin_key, card.number, voucher.number,
                                                voucher.pin, OP))
    assert done["balance"] == Decimal("15.00")
    with pytest.raises(vouchers.RefillError, match="used already"):
        tx(shop, lambda cur: vouchers.refill(cur, pin_key, "1000000008", voucher.number,
                                             voucher.pin, OP))
    shown = shop.run(lambda cur: vouchers.show(cur, voucher.number))
    assert shown["status"] == "used" and shown["used_by"] == card.number
    assert mismatches(shop) == []


def test_five_wrong_voucher_pins_suspend_the_voucher(shop, pin_key):
    card = issue(shop, pin_key, "usd-10", 1)["pieces"][0]
    voucher = issue(shop, pin_key, "refill-5", 1)["pieces"][0]
    bad = "0000" if voucher.pin != "0000" else "1111"
    for attempt in range(1, 6):
        out = tx(shop, lambda cur: vouchers.refill(cur, pin_key, card.number, voucher.number,
                                                   bad, OP))
        assert ("suspended" in out["refused"]) == (attempt == 5)
    # the right PIN now: refused, the voucher is suspended and nothing moved
    with pytest.raises(vouchers.RefillError, match="suspended"):
        tx(shop, lambda cur: vouchers.refill(cur, pin_key, card.number, voucher.number,
                                             voucher.pin, OP))
    assert one(shop, "SELECT balance FROM kondge.card WHERE number = %s",
               card.number)["balance"] == Decimal("10.00")
    assert db_audit(shop)[0]["action"] == "suspend"
    # reactivated, it takes the right PIN (and has its five tries again)
    tx(shop, lambda cur: batches.change_status(
        cur, Selection(numbers=(voucher.number,), kind="voucher"), "activate", OP))
    assert one(shop, "SELECT failed_attempts FROM kondge.voucher WHERE number = %s",
               voucher.number)["failed_attempts"] == 0
    done = tx(shop, lambda cur: vouchers.refill(cur, pin_key, card.number, voucher.number,
                                                voucher.pin, OP))
    assert done["balance"] == Decimal("15.00")


def test_racing_refills_of_one_voucher_credit_once(shop, pin_key, dsn):
    from kondge_billing.store.db import Database
    targets = [p.number for p in issue(shop, pin_key, "usd-10", 2)["pieces"]]
    voucher = issue(shop, pin_key, "refill-5", 1)["pieces"][0]
    barrier, results = threading.Barrier(2), []

    def attempt(card_number):
        db = Database(dsn)
        try:
            def work(cur):
                cur.execute("SELECT 1")
                barrier.wait()
                return vouchers.refill(cur, pin_key, card_number, voucher.number, voucher.pin, OP)
            results.append(db.transaction(work))
        except vouchers.RefillError as exc:
            results.append(exc)
        finally:
            db.close()
    threads = [threading.Thread(target=attempt, args=(n,)) for n in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(type(r).__name__ for r in results) == ["RefillError", "dict"]
    total = one(shop, "SELECT sum(balance) AS s FROM kondge.card WHERE number = ANY(%s)", targets)
    assert total["s"] == Decimal("25.00")
    assert one(shop, "SELECT count(*) AS n FROM kondge.ledger_entry "
                     "WHERE key = %s", f"voucher:{voucher.number}")["n"] == 1


# --- expiry and stats -------------------------------------------------------------------

def test_expire_moves_the_value_once(shop, pin_key):
    batch = issue(shop, pin_key, "usd-10", 3, "e3")
    expired = [p.number for p in batch["pieces"][:2]]
    shop.run(lambda cur: cur.execute(
        "UPDATE kondge.card SET expires_at = now() - interval '1 day' WHERE number = ANY(%s)",
        (expired,)))
    first = tx(shop, lambda cur: cards.expire(cur, OP))
    again = tx(shop, lambda cur: cards.expire(cur, OP))
    assert (first["cards"], first["value"]) == (2, {"USD": Decimal("20.00")})
    assert again["cards"] == 0
    entries = rows(shop, "SELECT amount FROM kondge.ledger_entry WHERE kind = 'expiry'")
    assert [e["amount"] for e in entries] == [Decimal("-10.00")] * 2
    assert mismatches(shop) == []
    stats = shop.run(lambda cur: reports.card_stats(cur, "batch", "e3"))
    assert len(stats) == 1 and stats[0]["issued"] == 3 and stats[0]["activated"] == 3
    assert stats[0]["remaining_value"] == Decimal("10.00")
    assert stats[0]["expired_value"] == Decimal("20.00")
    assert db_audit(shop)[0]["count"] == 0 and db_audit(shop)[1]["count"] == 2


def test_stats_by_status_and_used(shop, pin_key, billing):
    batch = issue(shop, pin_key, "usd-10", 4, "s4", active=False)
    used = batch["pieces"][0].number
    tx(shop, lambda cur: batches.change_status(cur, Selection(numbers=(used,)), "activate", OP))
    call(billing, batch["pieces"][0], 30, "BBBB0001 0F4411D6 AB5591F0 CBF3D765")
    by_status = {r["group"]: r for r in shop.run(lambda cur: reports.card_stats(cur, "status"))
                 if r["currency"] == "USD"}
    assert by_status["inactive"]["issued"] == 3 and by_status["inactive"]["activated"] == 0
    by_batch = {r["group"]: r for r in shop.run(lambda cur: reports.card_stats(cur, "batch"))}
    assert by_batch["s4"]["used"] == 1 and by_batch["s4"]["activated"] == 1


# --- statements -----------------------------------------------------------------------

def test_statement_pdf_has_calls_refills_and_totals(shop, pin_key, billing, tmp_path):
    card = issue(shop, pin_key, "usd-10", 1)["pieces"][0]
    call(billing, card, 125, "CCCC0001 0F4411D6 AB5591F0 CBF3D765")       # 0.3150
    call(billing, card, 60, "CCCC0002 0F4411D6 AB5591F0 CBF3D765", "442071234567")
    tx(shop, lambda cur: batches.top_up(cur, Selection(numbers=(card.number,)), OP, "3",
                                        "USD", "op-st"))
    st = shop.run(lambda cur: statements.statement(cur, card.number, NOW - timedelta(hours=1),
                                                   NOW + timedelta(hours=1)))
    assert st["opening"] == 0 and len(st["calls"]) == 2
    assert st["charges"] == Decimal("0.3650")                     # 0.3150 + 0.05
    assert st["closing"] == Decimal("12.6350")
    out = tmp_path / "st.pdf"
    statements.render_pdf(st, out)
    text = "\n".join(page.extract_text() for page in PdfReader(out).pages)
    for expected in (card.number, "447911123456", "442071234567", "125", "0.3150",
                     "Total calls", "0.3650", "refill", "3.0000", "Closing balance",
                     "12.6350 USD"):
        assert expected in text, expected
    later = shop.run(lambda cur: statements.statement(cur, card.number, NOW + timedelta(hours=1),
                                                      NOW + timedelta(hours=2)))
    assert later["opening"] == Decimal("12.6350") and later["calls"] == []


# --- report views -------------------------------------------------------------------------

def test_report_views(shop, pin_key, billing):
    pieces = issue(shop, pin_key, "usd-10", 2)["pieces"]
    cards_ = [p.number for p in pieces]
    call(billing, pieces[0], 125, "DDDD0001 0F4411D6 AB5591F0 CBF3D765")
    call(billing, pieces[1], 60, "DDDD0002 0F4411D6 AB5591F0 CBF3D765", "442071234567")
    call(billing, pieces[1], 0, "DDDD0003 0F4411D6 AB5591F0 CBF3D765", "442071234567")
    revenue = rows(shop, "SELECT * FROM reports.daily_revenue ORDER BY destination")
    assert [(r["gateway"], r["destination"], r["category"], r["calls"], r["revenue"])
            for r in revenue] == [("demo-gw", "44", "usd-10", 2, Decimal("0.05")),
                                  ("demo-gw", "4479", "usd-10", 1, Decimal("0.3150"))]
    asr = one(shop, "SELECT * FROM reports.asr_acd")
    assert (asr["attempts"], asr["answered"], asr["asr_percent"], asr["acd_seconds"]) == (
        3, 2, Decimal("66.67"), Decimal("92.5"))
    top = rows(shop, "SELECT * FROM reports.top_destinations ORDER BY rank")
    assert [t["destination"] for t in top] == ["4479", "44"]
    liability = rows(shop, "SELECT * FROM reports.balance_liability WHERE category = 'usd-10'")
    assert liability[0]["liability"] == Decimal("20.00") - Decimal("0.3650")
    assert mismatches(shop) == []
    shop.run(lambda cur: cur.execute("UPDATE kondge.card SET balance = balance + 1 "
                                     "WHERE number = %s", (cards_[0],)))
    assert [r["number"] for r in rows(shop, "SELECT * FROM reports.reconciliation")] == [cards_[0]]


def test_voucher_batches_are_activated_like_cards(shop, pin_key):
    batch = issue(shop, pin_key, "refill-5", 3, "v3", active=False)
    card = issue(shop, pin_key, "usd-10", 1)["pieces"][0]
    voucher = batch["pieces"][0]
    with pytest.raises(vouchers.RefillError, match="is inactive"):
        tx(shop, lambda cur: vouchers.refill(cur, pin_key, card.number, voucher.number,
                                             voucher.pin, OP))
    sel = Selection(batch="v3", kind="voucher")
    assert tx(shop, lambda cur: batches.change_status(cur, sel, "activate", OP))["changed"] == 3
    assert tx(shop, lambda cur: vouchers.refill(cur, pin_key, card.number, voucher.number,
                                                voucher.pin, OP))["balance"] == Decimal("15.00")
    with pytest.raises(batches.BatchError, match="only calling cards"):
        tx(shop, lambda cur: batches.top_up(cur, sel, OP, "1", "USD", "op-v"))
    shown = shop.run(lambda cur: cards.show(cur, card.number))
    assert shown["serial"] == card.serial and shown["batch"] is not None


# --- what would later bill a call wrongly is refused -------------------------------------

EXAMPLE_TARIFF = demo.DEMO_TARIFF_FILE.parent / "example.yaml"      # tariff intl, in EUR


def card_state(db, numbers):
    """Everything a refused change must leave as it was: the cards and their ledger."""
    return (rows(db, "SELECT number, category, currency, balance, tariff_id, status "
                     "FROM kondge.card WHERE number = ANY(%s) ORDER BY number", list(numbers)),
            rows(db, "SELECT l.* FROM kondge.ledger_entry l JOIN kondge.card c "
                     "ON c.id = l.card_id WHERE c.number = ANY(%s) ORDER BY l.id", list(numbers)))


def audited(db, action):
    return rows(db, "SELECT * FROM kondge.audit_log WHERE action = %s ORDER BY id", action)


def test_a_move_into_another_currency_is_refused_and_changes_nothing(shop, pin_key, billing):
    add_category(shop, "eur-post", face_value="10", currency="EUR", billing="postpaid",
                 credit_limit="50")
    numbers = [p.number for p in issue(shop, pin_key, "usd-10", 3, "usd3")["pieces"]]
    before = card_state(shop, numbers)
    with pytest.raises(batches.BatchError) as err:
        tx(shop, lambda cur: batches.move(cur, Selection(batch="usd3"), OP, "eur-post"))
    message = str(err.value)
    assert "3 selected cards (category usd-10) are in USD" in message
    assert "category eur-post is in EUR" in message and "keeps its currency" in message
    assert "issue new cards in eur-post" in message and "nothing was moved" in message
    assert card_state(shop, numbers) == before
    assert audited(shop, "move") == []
    assert mismatches(shop) == []


def test_a_move_into_another_billing_model_is_refused(shop, pin_key):
    add_category(shop, "usd-post", currency="USD", billing="postpaid", credit_limit="50")
    add_category(shop, "usd-other", face_value="20", currency="USD")
    numbers = [p.number for p in issue(shop, pin_key, "usd-10", 2, "b2")["pieces"]]
    before = card_state(shop, numbers)
    with pytest.raises(batches.BatchError, match="2 selected cards .* are prepaid, category "
                                                 "usd-post is postpaid: a card keeps its billing"):
        tx(shop, lambda cur: batches.move(cur, Selection(batch="b2"), OP, "usd-post"))
    assert card_state(shop, numbers) == before
    # within one currency and billing model a move is what it was
    assert tx(shop, lambda cur: batches.move(cur, Selection(batch="b2"), OP,
                                             "usd-other"))["changed"] == 2
    assert audited(shop, "move")[0]["details"]["to"] == "usd-other"


def test_one_card_that_may_not_move_stops_the_whole_move(shop, pin_key):
    add_category(shop, "eur-5", face_value="5", currency="EUR")
    add_category(shop, "eur-6", face_value="6", currency="EUR")
    usd = issue(shop, pin_key, "usd-10", 2, "u2")["pieces"]
    eur = issue(shop, pin_key, "eur-5", 2, "e2")["pieces"]
    numbers = [p.number for p in usd + eur]
    before = card_state(shop, numbers)
    with pytest.raises(batches.BatchError, match="2 selected cards .* in USD"):
        tx(shop, lambda cur: batches.move(cur, Selection(numbers=tuple(numbers)), OP, "eur-6"))
    assert card_state(shop, numbers) == before


def test_vouchers_move_only_within_their_currency(shop, pin_key):
    add_category(shop, "refill-eur", face_value="5", currency="EUR", kind="voucher")
    issue(shop, pin_key, "refill-5", 1, "v1")
    with pytest.raises(batches.BatchError, match="1 selected voucher .* is in USD"):
        tx(shop, lambda cur: batches.move(cur, Selection(batch="v1", kind="voucher"), OP,
                                          "refill-eur"))


def test_a_category_with_cards_keeps_its_currency_and_billing(shop, pin_key):
    issue(shop, pin_key, "usd-10", 3)
    for change, says in (({"currency": "EUR"}, "its currency cannot change from USD to EUR"),
                         ({"billing": "postpaid", "credit_limit": "5"},
                          "its billing cannot change from prepaid to postpaid")):
        with pytest.raises(categories.CategoryError) as err:
            tx(shop, lambda cur: categories.modify(cur, "usd-10", **change))
        assert "category usd-10 has 3 cards" in str(err.value) and says in str(err.value)
    assert shop.run(lambda cur: categories.show(cur, "usd-10"))["currency"] == "USD"
    issue(shop, pin_key, "refill-5", 2)
    with pytest.raises(categories.CategoryError, match="refill-5 has 2 vouchers: its currency"):
        tx(shop, lambda cur: categories.modify(cur, "refill-5", currency="EUR"))
    # anything else still changes, and an empty category changes currency and billing
    assert tx(shop, lambda cur: categories.modify(cur, "usd-10", face_value="12.00",
                                                  operator=OP))["face_value"] == Decimal("12.00")
    add_category(shop, "empty")
    changed = tx(shop, lambda cur: categories.modify(cur, "empty", currency="EUR",
                                                     billing="postpaid", credit_limit="5"))
    assert (changed["currency"], changed["billing"]) == ("EUR", "postpaid")


def test_a_card_is_added_only_into_a_calling_card_category_of_its_currency(shop, pin_key):
    add_category(shop, "eur-5", face_value="5", currency="EUR")
    for category, says in (("usd-10", "category: usd-10 is in USD, the card in EUR"),
                           ("refill-5", "category: refill-5 is for recharge vouchers"),
                           ("nope", "category: no category nope")):
        with pytest.raises(cards.CardError, match=says):
            tx(shop, lambda cur: cards.add(cur, pin_key, "3000000004", "1234", "5", "EUR",
                                           category=category))
    card = tx(shop, lambda cur: cards.add(cur, pin_key, "3000000004", "1234", "5", "EUR",
                                          category="eur-5"))
    assert (card["category"], card["currency"]) == ("eur-5", "EUR")


@pytest.mark.parametrize("currency, says", [
    ("usd", "'usd': ISO 4217 codes are written in capitals: USD"),
    ("XYZ", "'XYZ' is no active ISO 4217 currency code"),
    ("XAU", "XAU is an ISO 4217 code without minor units"),
])
def test_a_currency_is_an_active_iso_4217_code_in_capitals(shop, pin_key, currency, says):
    with pytest.raises(cards.CardError, match=says):
        tx(shop, lambda cur: cards.add(cur, pin_key, "3000000004", "1234", "5", currency))
    with pytest.raises(categories.CategoryError, match=says):
        add_category(shop, "odd", currency=currency)
    with pytest.raises(categories.CategoryError, match=says):
        tx(shop, lambda cur: categories.modify(cur, "refill-5", currency=currency))
    issue(shop, pin_key, "usd-10", 1, "one")
    with pytest.raises(batches.BatchError, match=says):
        tx(shop, lambda cur: batches.top_up(cur, Selection(batch="one"), OP, "1", currency,
                                            "op-c"))
    assert rows(shop, "SELECT * FROM kondge.card WHERE currency <> 'USD'") == []


def test_a_category_made_before_the_checks_issues_nothing(shop, pin_key):
    shop.run(lambda cur: cur.execute(
        "INSERT INTO kondge.category (name, currency, face_value) VALUES "
        "('legacy', 'XYZ', 1), ('legacy-2', 'USD', 1e30)"))
    with pytest.raises(issuance.IssueError, match="category legacy: 'XYZ' is no active"):
        issue(shop, pin_key, "legacy", 1)
    with pytest.raises(issuance.IssueError, match="legacy-2: face value: .* more than 12 digits"):
        issue(shop, pin_key, "legacy-2", 1)
    assert rows(shop, "SELECT * FROM kondge.batch") == []


@pytest.mark.parametrize("typed, says", [
    ("1e400", "not a plain decimal"),
    ("NaN", "not a plain decimal"),
    ("Infinity", "not a plain decimal"),
    ("-0", "negative zero"),
    ("-0.00", "negative zero"),
    ("0." + "0" * 29 + "1", "more than 8 digits after the point"),
    ("1234567890123", "more than 12 digits before the point"),
    ("10.005", "finer than USD allows"),
    ("-1", "must not be negative"),
])
def test_absurd_amounts_are_refused_everywhere(shop, pin_key, typed, says):
    with pytest.raises(cards.CardError, match=f"balance: .*{says}"):
        tx(shop, lambda cur: cards.add(cur, pin_key, "3000000004", "1234", typed, "USD"))
    with pytest.raises(categories.CategoryError, match=f"face value: .*{says}"):
        add_category(shop, "odd", face_value=typed)
    with pytest.raises(categories.CategoryError, match=f"credit limit: .*{says}"):
        add_category(shop, "odd", billing="postpaid", credit_limit=typed)
    with pytest.raises(categories.CategoryError, match=f"face value: .*{says}"):
        add_category(shop, "odd", kind="voucher", face_value=typed)
    issue(shop, pin_key, "usd-10", 1, "one")
    before = card_state(shop, [c["number"] for c in rows(shop, "SELECT number FROM kondge.card")])
    expected = "above zero" if typed.startswith("-1") else says
    with pytest.raises(batches.BatchError, match=f"--amount: .*{expected}"):
        tx(shop, lambda cur: batches.top_up(cur, Selection(batch="one"), OP, typed, "USD",
                                            "op-a"))
    assert card_state(shop, [c["number"] for c in
                             rows(shop, "SELECT number FROM kondge.card")]) == before
    assert [c["name"] for c in shop.run(categories.all_categories)] == [
        "refill-5", "standard", "usd-10"]


def test_an_amount_is_kept_exactly_as_typed(shop, pin_key):
    card = tx(shop, lambda cur: cards.add(cur, pin_key, "3000000004", "1234",
                                          "123456789012.10", "USD"))
    assert card["balance"] == Decimal("123456789012.10") == card["ledger_sum"]
    add_category(shop, "jpy", currency="JPY", face_value="1000.00")
    assert issue(shop, pin_key, "jpy", 1)["face_value"] == Decimal("1000")


# --- tariffs of cards and categories ------------------------------------------------------

@pytest.fixture
def tariffs(shop):
    """The demo tariff (USD, the default) and the example tariff intl (EUR)."""
    shop.run(lambda cur: demo.load_tariff_file(cur, EXAMPLE_TARIFF))
    add_category(shop, "eur-5", face_value="5.00", currency="EUR")
    return shop


def test_a_card_gets_a_tariff_of_its_currency(tariffs, pin_key):
    def add(number, currency, tariff, category="standard"):
        return tx(tariffs, lambda cur: cards.add(cur, pin_key, number, "1234", "5", currency,
                                                 category=category, tariff=tariff, operator=OP))
    with pytest.raises(cards.CardError, match="tariff: no tariff named 'nope'"):
        add("3000000004", "USD", "nope")
    with pytest.raises(cards.CardError, match="tariff: intl prices in EUR, card 3000000004 is "
                                              "in USD; name a tariff in USD"):
        add("3000000004", "USD", "intl")
    assert rows(tariffs, "SELECT * FROM kondge.card WHERE number = '3000000004'") == []
    card = add("3000000004", "EUR", "intl", category="eur-5")
    assert (card["tariff"], card["category_tariff"]) == ("intl", None)
    assert one(tariffs, "SELECT t.name FROM kondge.card c JOIN kondge.tariff t "
                        "ON t.id = c.tariff_id WHERE c.number = '3000000004'")["name"] == "intl"
    assert add("3000000012", "USD", None)["tariff"] is None
    entry = audited(tariffs, "add card")[-2]
    assert entry["operator"] == OP and entry["selection"] == {"numbers": ["3000000004"]}
    assert entry["details"] == {"balance": "5", "currency": "EUR", "category": "eur-5",
                                "tariff": "intl", "language": "en"}


def test_a_category_names_a_tariff_of_its_currency(tariffs, pin_key):
    with pytest.raises(categories.CategoryError, match="tariff: intl prices in EUR, category "
                                                       "usd-x is in USD"):
        add_category(tariffs, "usd-x", currency="USD", tariff="intl")
    with pytest.raises(categories.CategoryError, match="tariff: no tariff named 'nope'"):
        add_category(tariffs, "usd-x", tariff="nope")
    with pytest.raises(categories.CategoryError, match="voucher category rates no calls"):
        add_category(tariffs, "v-x", kind="voucher", face_value="1", tariff="demo")
    added = add_category(tariffs, "eur-intl", currency="EUR", tariff="intl", operator=OP)
    assert added["tariff"] == "intl"
    assert [c["tariff"] for c in tariffs.run(categories.all_categories)
            if c["name"] == "eur-intl"] == ["intl"]
    number = issue(tariffs, pin_key, "eur-intl", 1)["pieces"][0].number
    shown = tariffs.run(lambda cur: cards.show(cur, number))
    assert (shown["tariff"], shown["category_tariff"]) == (None, "intl")
    # its currency cannot leave its tariff behind (even with no cards), nor a tariff come in
    # that prices in another currency
    add_category(tariffs, "empty-eur", currency="EUR", tariff="intl")
    with pytest.raises(categories.CategoryError, match="intl prices in EUR, category "
                                                       "empty-eur is in USD"):
        tx(tariffs, lambda cur: categories.modify(cur, "empty-eur", currency="USD"))
    moved = tx(tariffs, lambda cur: categories.modify(cur, "empty-eur", currency="USD",
                                                      tariff="demo", operator=OP))
    assert (moved["currency"], moved["tariff"]) == ("USD", "demo")
    gone = tx(tariffs, lambda cur: categories.modify(cur, "empty-eur",
                                                     tariff=categories.NO_TARIFF, operator=OP))
    assert gone["tariff"] is None
    log = audited(tariffs, "modify category")
    assert [e["details"]["changes"] for e in log[-2:]] == [
        {"currency": {"from": "EUR", "to": "USD"}, "tariff": {"from": "intl", "to": "demo"}},
        {"tariff": {"from": "demo"}}]
    assert audited(tariffs, "add category")[-1]["details"]["tariff"] == "intl"


def test_issued_cards_get_the_tariff_asked_for(tariffs, pin_key):
    with pytest.raises(issuance.IssueError, match="intl prices in EUR, category usd-10 is in USD"):
        issue(tariffs, pin_key, "usd-10", 2, "t-usd", tariff="intl")
    with pytest.raises(issuance.IssueError, match="vouchers rate no calls"):
        issue(tariffs, pin_key, "refill-5", 2, "t-v", tariff="demo")
    assert rows(tariffs, "SELECT * FROM kondge.batch") == []
    batch = issue(tariffs, pin_key, "eur-5", 2, "t-eur", tariff="intl")
    assert batch["tariff"] == "intl"
    got = rows(tariffs, "SELECT DISTINCT t.name FROM kondge.card c JOIN kondge.tariff t "
                        "ON t.id = c.tariff_id WHERE c.batch_id = %s", batch["batch_id"])
    assert [g["name"] for g in got] == ["intl"]
    assert audited(tariffs, "issue cards")[-1]["details"]["tariff"] == "intl"
