"""Every operator command leaves exactly one audit record, written by the
database with the change (who, the database role, what, how many), and a
command that fails leaves none and changes nothing.

The commands run in process (kondge_billing.cli.main), as an operator runs
them: on a fresh database, as the kondge_operator role (the owner's for the
gateways and tariffs, which operators may not change).
"""

import json
from decimal import Decimal

import pytest

from kondge_billing.store import audit, batches, callers, categories, issuance
from kondge_billing import cli
from kondge_billing.operations import demo
from kondge_billing.progress import Progress

EXAMPLE_TARIFF = demo.DEMO_TARIFF_FILE.parent / "example.yaml"


@pytest.fixture
def shop(db, pin_key):
    """The demo set, categories in USD (two) and EUR, a voucher category, an
    inactive batch b5 of five cards and a voucher; returns what the commands name."""
    db.run(lambda cur: demo.load(cur, pin_key))
    for name, fields in (("usd-10", {"face_value": "10.00"}), ("usd-other", {}),
                         ("eur-5", {"face_value": "5.00", "currency": "EUR"}),
                         ("refill-5", {"face_value": "5.00", "kind": "voucher"})):
        db.transaction(lambda cur: categories.add(cur, name, operator="setup", **fields))
    quiet = lambda label, total: Progress(label, total, enabled=False)  # noqa: E731
    cards = db.transaction(lambda cur: issuance.issue(
        cur, pin_key, "usd-10", 5, "b5", "setup", active=False, progress=quiet))["pieces"]
    voucher = db.transaction(lambda cur: issuance.issue(
        cur, pin_key, "refill-5", 1, "v1", "setup", progress=quiet))["pieces"][0]
    db.transaction(lambda cur: batches.change_status(
        cur, batches.Selection(numbers=(cards[0].number,)), "activate", "setup"))
    db.transaction(lambda cur: callers.bind(cur, "1000000016", ["447700900555"],
                                            operator="setup"))
    return {"card": cards[0].number, "inactive": cards[1].number, "voucher": voucher.number,
            "voucher_pin": voucher.pin, "wrong_pin": "0000" if voucher.pin != "0000" else "1111"}


@pytest.fixture
def kondge(dsn, settings, tmp_path, monkeypatch, capsys):
    """kondge(role, *argv) -> exit status, as `role` with KONDGE_OPERATOR=olga."""
    def run(role, *argv, operator="olga"):
        monkeypatch.setenv("KONDGE_DSN", dsn.replace("user=kondge", f"user={role}"))
        monkeypatch.setenv("KONDGE_PIN_KEY", str(settings.pin_key_file))
        monkeypatch.setenv("KONDGE_VAR", str(tmp_path / "var"))
        monkeypatch.setenv("USER", "mallory")              # never taken for the login user
        monkeypatch.setenv("LOGNAME", "mallory")
        if operator is None:
            monkeypatch.delenv("KONDGE_OPERATOR", raising=False)
        else:
            monkeypatch.setenv("KONDGE_OPERATOR", operator)
        status = cli.main([a.format(out=tmp_path) if isinstance(a, str) else a for a in argv])
        capsys.readouterr()
        return status
    return run


OPERATOR, OWNER = "kondge_operator", "kondge"

# role, command (with {card}, {voucher}, ... from the shop), and the one record it leaves:
# action, count, what its selection names
COMMANDS = [
    (OPERATOR, "cards add --number 3000000004 --pin 4321 --balance 1000000.00 --currency USD",
     "add card", 1, {"numbers": ["3000000004"]}),
    (OPERATOR, "cards issue --category usd-10 --count 3 --batch b3 --out {out}/b3.xlsx",
     "issue cards", 3, {"batch": "b3"}),
    (OPERATOR, "cards issue --category refill-5 --count 2 --batch v2 --out {out}/v2.xlsx",
     "issue vouchers", 2, {"batch": "v2"}),
    (OPERATOR, "cards activate --batch b5", "activate", 4, {"batch": "b5"}),
    (OPERATOR, "cards suspend --numbers {card}", "suspend", 1, {"numbers": ["{card}"]}),
    (OPERATOR, "cards cancel --batch b5 --status inactive", "cancel", 4, {"batch": "b5"}),
    (OPERATOR, "cards extend --batch b5 --until 2031-01-01", "extend", 5, {"batch": "b5"}),
    (OPERATOR, "cards move --batch b5 --to usd-other", "move", 5, {"batch": "b5"}),
    (OPERATOR, "cards topup --batch b5 --amount 1.00 --currency USD --operation-id t1",
     "top-up", 5, {"batch": "b5"}),
    (OPERATOR, "cards refill --card {card} --voucher {voucher} --pin {voucher_pin}",
     "refill", 1, {"card": "{card}", "voucher": "{voucher}"}),
    (OPERATOR, "cards expire", "expire", 0, {}),
    (OPERATOR, "cards adjust {card} --amount -2.50 --currency USD --reason goodwill",
     "adjust", 1, {"card": "{card}"}),
    (OPERATOR, "cards adjust {card} --amount 2.50 --currency USD --reason dropped --refund",
     "refund", 1, {"card": "{card}"}),
    (OPERATOR, "cards transfer --from {card} --to 1000000008 --amount 4.00 --currency USD "
               "--reason lost", "transfer", 2, {"from": "{card}", "to": "1000000008"}),
    (OPERATOR, "cards set-pin {card} --pin 97531", "set pin", 1, {"card": "{card}"}),
    (OPERATOR, "cards modify {card} --language fr --no-expiry", "modify card", 1,
     {"card": "{card}"}),
    (OPERATOR, "categories add usd-20 --face-value 20.00 --max-call-seconds 3600",
     "add category", 1, {"category": "usd-20"}),
    (OPERATOR, "categories modify usd-10 --max-calls 2 --auto-bind", "modify category", 1,
     {"category": "usd-10"}),
    (OPERATOR, "callers bind --card {card} +447700900123 447700900124", "bind callers", 2,
     {"card": "{card}"}),
    (OPERATOR, "callers unbind 447700900555", "unbind callers", 1,
     {"numbers": ["447700900555"]}),
    (OPERATOR, "access-numbers add 8005550199 --login caller --language zh",
     "add access number", 1, {"access_number": "8005550199"}),
    (OPERATOR, "access-numbers modify 18005550100 --login card", "modify access number", 1,
     {"access_number": "18005550100"}),
    (OWNER, "gateways add --name gw-2 --address 192.0.2.7 --secret s3cret --dialect quintum",
     "add gateway", 1, {"gateway": "gw-2"}),
    (OWNER, "gateways modify demo-gw --country-code 44", "modify gateway", 1,
     {"gateway": "demo-gw"}),
    (OWNER, "gateways remove demo-gw", "remove gateway", 1, {"gateway": "demo-gw"}),
    (OWNER, f"tariffs load {EXAMPLE_TARIFF}", "load tariff", 1, {"tariff": "intl"}),
]


def filled(text: str, shop: dict) -> str:
    return text.format(out="{out}", **shop)


def argv(command, shop: dict) -> list[str]:
    """A command written as one string (split at spaces) or as its arguments."""
    words = command.split() if isinstance(command, str) else command
    return [filled(w, shop) for w in words]


def name(command) -> str:
    words = command.split() if isinstance(command, str) else command
    return " ".join(words[:2])


def records_after(db, last_id: int) -> list[dict]:
    return db.run(lambda cur: (cur.execute(
        "SELECT * FROM kondge.audit_log WHERE id > %s ORDER BY id", (last_id,)),
        cur.fetchall())[1])


def last_id(db) -> int:
    return db.run(lambda cur: (cur.execute("SELECT coalesce(max(id), 0) AS id "
                                           "FROM kondge.audit_log"), cur.fetchone())[1])["id"]


@pytest.mark.parametrize("role, command, action, count, selection", COMMANDS,
                         ids=[name(c[1]) for c in COMMANDS])
def test_each_command_leaves_one_audit_record(shop, db, kondge, role, command, action, count,
                                              selection):
    before = last_id(db)
    assert kondge(role, *argv(command, shop)) == 0
    records = records_after(db, before)
    assert [(r["action"], r["count"], r["operator"], r["db_user"]) for r in records] == [
        (action, count, "olga", role)]
    wanted = {k: ([filled(x, shop) for x in v] if isinstance(v, list) else filled(v, shop))
              for k, v in selection.items()}
    assert {k: records[0]["selection"].get(k) for k in wanted} == wanted
    assert db.run(lambda cur: (cur.execute("SELECT * FROM reports.reconciliation"),
                               cur.fetchall())[1]) == []


def test_the_audit_records_say_what_changed(shop, db, kondge):
    before = last_id(db)
    for command in ("cards add --number 3000000004 --pin 4321 --balance 7.25 --currency EUR "
                    "--category eur-5",
                    "categories modify usd-10 --face-value 12.00 --max-callers 5",
                    "cards adjust 3000000004 --amount -1.25 --currency EUR --reason typo "
                    "--operation-id fix-1",
                    "cards modify 3000000004 --language de"):
        assert kondge(OPERATOR, *command.split()) == 0
    assert kondge(OWNER, "gateways", "modify", "demo-gw", "--billed-leg", "answer",
                  "--operator", "root-on-call") == 0
    details = [(r["operator"], r["details"]) for r in records_after(db, before)]
    assert details == [
        ("olga", {"balance": "7.25", "currency": "EUR", "category": "eur-5", "language": "en"}),
        ("olga", {"changes": {"face_value": {"from": "10.00", "to": "12.00"},
                              "max_callers": {"from": 3, "to": 5}}}),
        ("olga", {"amount": "-1.25", "currency": "EUR", "reason": "typo",
                  "operation_id": "fix-1", "balance": "6.00"}),
        ("olga", {"changes": {"language": {"from": "en", "to": "de"}}}),
        ("root-on-call", {"changes": {"billed_leg": {"from": "originate", "to": "answer"}}}),
    ]


def test_the_operator_is_the_login_user_not_what_user_says(shop, db, kondge):
    before = last_id(db)
    assert kondge(OPERATOR, "cards", "suspend", "--numbers", shop["card"], operator=None) == 0
    assert kondge(OPERATOR, "cards", "activate", "--numbers", shop["card"], "--operator",
                  "bob") == 0
    assert [r["operator"] for r in records_after(db, before)] == [audit.login_user(), "bob"]
    assert audit.login_user() != "mallory"


def books(db) -> dict:
    """All an operator's command could change."""
    def read(cur):
        out = {}
        for table in ("card", "voucher", "ledger_entry", "audit_log", "category", "caller",
                      "access_number", "batch", "gateway", "tariff_version"):
            cur.execute(f"SELECT * FROM kondge.{table} ORDER BY 1")
            out[table] = cur.fetchall()
        return out
    return db.run(read)


FAILURES = [
    (OPERATOR, "cards add --number 1000000008 --pin 4321 --balance 1.00 --currency USD"),
    (OPERATOR, "cards add --number 3000000004 --pin 4321 --balance 1.00 --currency USD "
               "--category eur-5"),
    (OPERATOR, "cards issue --category nope --count 3 --out {out}/x.xlsx"),
    (OPERATOR, "cards issue --category usd-10 --count 3 --batch b5 --out {out}/y.xlsx"),
    (OPERATOR, "cards move --batch b5 --to eur-5"),
    (OPERATOR, "cards topup --batch b5 --amount 1.00 --currency EUR"),
    (OPERATOR, "cards topup --batch b5 --amount 0.001 --currency USD"),
    (OPERATOR, "cards refill --card 1999999996 --voucher {voucher} --pin {voucher_pin}"),
    (OPERATOR, "cards refill --card {card} --voucher {voucher} --pin {wrong_pin}"),
    (OPERATOR, "cards adjust {card} --amount -10.01 --currency USD --reason more-than-it-has"),
    (OPERATOR, "cards adjust {card} --amount -1.00 --currency EUR --reason wrong-currency"),
    (OPERATOR, "cards transfer --from {card} --to 1000000008 --amount 10.01 --currency USD "
               "--reason too-much"),
    (OPERATOR, "cards set-pin 1999999996 --pin 1234"),
    (OPERATOR, "cards modify {card} --tariff nope"),
    (OPERATOR, "categories add usd-10 --face-value 1.00"),
    (OPERATOR, "categories modify usd-10 --currency EUR"),
    (OPERATOR, "callers bind --card 1999999996 447700900123"),
    (OPERATOR, "callers unbind 447700900123"),
    (OPERATOR, "access-numbers add 18005550100"),
    (OPERATOR, "access-numbers modify 8005550199 --login both"),
    (OPERATOR, "gateways add --name gw-2 --address 192.0.2.7 --secret s3cret --dialect cisco"),
    (OPERATOR, "gateways remove demo-gw"),
    (OPERATOR, f"tariffs load {EXAMPLE_TARIFF}"),
    (OPERATOR, ["cards", "suspend", "--numbers", "{card}", "--operator", "\x1b[2J nobody"]),
    (OWNER, "gateways add --name demo-gw --address 192.0.2.8 --secret s3cret --dialect cisco"),
    (OWNER, "gateways remove nope"),
]


@pytest.mark.parametrize("role, command", FAILURES,
                         ids=[name(c[1]) for c in FAILURES])
def test_a_failed_command_leaves_no_record_and_changes_nothing(shop, db, kondge, role,
                                                                command):
    before = books(db)
    assert kondge(role, *argv(command, shop)) == 1
    after = books(db)
    if "{wrong_pin}" in command:          # a wrong voucher PIN is counted, nothing else
        assert [v["failed_attempts"] for v in after["voucher"]] == [1]
        after["voucher"] = before["voucher"]
    assert after == before


def test_the_fifth_wrong_voucher_pin_suspends_it_with_one_record(shop, db, kondge):
    before = last_id(db)
    for _ in range(5):
        assert kondge(OPERATOR, "cards", "refill", "--card", shop["card"], "--voucher",
                      shop["voucher"], "--pin", shop["wrong_pin"]) == 1
    assert [(r["action"], r["selection"]) for r in records_after(db, before)] == [
        ("suspend", {"voucher": shop["voucher"]})]
    status = db.run(lambda cur: (cur.execute("SELECT status FROM kondge.voucher"),
                                 cur.fetchone())[1])["status"]
    assert status == "suspended"


def test_money_an_operator_moves_stays_in_the_books(shop, db, kondge):
    """The review's 1,000,000 USD card is a record now, and every legitimate
    movement keeps the reconciliation empty."""
    for command in ("cards add --number 3000000004 --pin 4321 --balance 1000000.00 "
                    "--currency USD",
                    "cards topup --batch b5 --amount 1.00 --currency USD --operation-id t1",
                    "cards topup --batch b5 --amount 1.00 --currency USD --operation-id t1",
                    f"cards refill --card {shop['card']} --voucher {shop['voucher']} "
                    f"--pin {shop['voucher_pin']}",
                    "cards transfer --from 3000000004 --to 1000000008 --currency USD "
                    "--reason merge --operation-id m1",
                    "cards adjust 1000000008 --amount -0.50 --currency USD --reason fee"):
        assert kondge(OPERATOR, *command.split()) == 0
    balances = db.run(lambda cur: (cur.execute(
        "SELECT number, balance FROM kondge.card WHERE number IN ('3000000004', '1000000008', "
        "%s) ORDER BY number", (shop["card"],)), dict((r["number"], r["balance"])
                                                       for r in cur.fetchall()))[1])
    assert balances == {"1000000008": Decimal("1000009.50"), "3000000004": Decimal("0.00"),
                        shop["card"]: Decimal("16.00")}
    added = db.run(lambda cur: (cur.execute(
        "SELECT operator, db_user, details FROM kondge.audit_log WHERE action = 'add card' "
        "AND selection->'numbers' ? '3000000004'"), cur.fetchall())[1])
    assert [(a["operator"], a["db_user"], a["details"]["balance"]) for a in added] == [
        ("olga", "kondge_operator", "1000000.00")]
    assert db.run(lambda cur: (cur.execute("SELECT * FROM reports.reconciliation"),
                               cur.fetchall())[1]) == []


def test_kondge_audit_list_shows_who_and_the_role(shop, db, kondge, capsys):
    assert kondge(OPERATOR, "cards", "suspend", "--numbers", shop["card"]) == 0
    assert cli.main(["audit", "list", "--limit", "1", "--json"]) == 0     # as the operator
    shown = json.loads(capsys.readouterr().out)
    assert [(r["action"], r["operator"], r["db_user"], r["count"]) for r in shown] == [
        ("suspend", "olga", "kondge_operator", 1)]
