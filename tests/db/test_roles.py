"""Least privilege: what the call path's and the operators' roles may do."""

from datetime import datetime, timezone
from pathlib import Path

import psycopg2
import pytest

from kondge_billing import calls, cards, demo
from kondge_billing.db import Database
from kondge_billing.pins import pin_hash
from kondge_billing.tariffs import schema, store

HOME = Path(__file__).resolve().parents[2]


@pytest.fixture
def world(db, pin_key):
    db.run(lambda cur: demo.load(cur, pin_key))
    return db


def as_role(dsn, role):
    return Database(dsn.replace("user=kondge", f"user={role}"))


def denied(database, sql, params=()):
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        database.run(lambda cur: cur.execute(sql, params))


@pytest.mark.parametrize("sql", [
    "SELECT pin_hash FROM kondge.card",
    "SELECT * FROM kondge.card",
    "SELECT * FROM kondge.gateway",
    "UPDATE kondge.card SET balance = 1000",
    "INSERT INTO kondge.ledger_entry (card_id, amount, kind, key, balance_after) "
    "VALUES (1, 100, 'adjustment', 'x', 100)",
    "DELETE FROM kondge.tariff_version",
    "INSERT INTO kondge.access_number (number) VALUES ('123')",
])
def test_radius_role_reads_and_changes_no_table(world, dsn, sql):
    radius = as_role(dsn, "kondge_radius")
    try:
        denied(radius, sql)
    finally:
        radius.close()


def test_radius_role_checks_one_pin_without_seeing_any_hash(world, dsn, pin_key):
    radius = as_role(dsn, "kondge_radius")
    try:
        def lookup(pin):
            return radius.run(lambda cur: cards.for_call(
                cur, "1000000008", "18005550100", gateway_id=1, call_id="x",
                at=datetime.now(timezone.utc), pin_hash=pin_hash(pin_key, "1000000008", pin)))
        assert lookup("1234").number == "1000000008"
        assert lookup("9999") == cards.CallRefused("wrong-pin")
        row = radius.run(lambda cur: (cur.execute(
            "SELECT * FROM kondge.radius_card('1000000008', NULL, NULL, '', NULL, 1, 'x', NULL,"
            " NULL, now())"), cur.fetchone())[1])
        assert "pin_hash" not in row and not any(
            isinstance(v, str) and v.startswith("hmac-sha256$") for v in row.values())
        assert row["refusal"] == "wrong-pin" and row["balance"] is None
    finally:
        radius.close()


def test_operator_cannot_load_tariffs_or_read_pins_but_works_cards(world, dsn, pin_key):
    operator = as_role(dsn, "kondge_operator")
    try:
        doc, problems = schema.parse((HOME / "tariffs" / "demo.yaml").read_text(), "demo.yaml")
        assert not problems
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            operator.transaction(lambda cur: store.load(cur, doc, "demo.yaml"))
        denied(operator, "SELECT pin_hash FROM kondge.card")
        denied(operator, "UPDATE kondge.gateway SET secret = 'x'")
        card = operator.transaction(lambda cur: cards.add(
            cur, pin_key, "1000000057", "4321", "5.00", "USD"))
        assert card["balance"] == 5
    finally:
        operator.close()


def test_operator_does_the_card_work_end_to_end(world, dsn, pin_key):
    from kondge_billing import batches, categories, issuance, reports, vouchers
    from kondge_billing.progress import factory
    operator = as_role(dsn, "kondge_operator")
    quiet = factory(False)
    try:
        run = operator.transaction
        run(lambda cur: categories.add(cur, "usd-10", face_value="10.00", currency="USD",
                                       operator="olga"))
        run(lambda cur: categories.add(cur, "refill-5", face_value="5.00", currency="USD",
                                       kind="voucher", operator="olga"))
        card = run(lambda cur: issuance.issue(cur, pin_key, "usd-10", 3, None, "olga",
                                              progress=quiet))["pieces"][0]
        voucher = run(lambda cur: issuance.issue(cur, pin_key, "refill-5", 1, None, "olga",
                                                 progress=quiet))["pieces"][0]
        done = run(lambda cur: vouchers.refill(cur, pin_key, card.number, voucher.number,
                                               voucher.pin, "olga"))
        assert done["balance"] == 15
        sel = batches.Selection(numbers=(card.number,))
        run(lambda cur: batches.top_up(cur, sel, "olga", "1.00", "USD", "op-1"))
        stats = operator.run(lambda cur: reports.card_stats(cur, by="category"))
        assert any(r["group"] == "usd-10" and r["issued"] == 3 for r in stats)
        audit = world.run(lambda cur: (cur.execute(
            "SELECT DISTINCT operator FROM kondge.audit_log ORDER BY 1"), cur.fetchall())[1])
        assert [a["operator"] for a in audit] == ["demo", "olga"]     # demo: the demo cards
    finally:
        operator.close()


def test_operator_names_tariffs_for_cards_and_categories(world, dsn, pin_key):
    """Migration 0012's column needs no grant of its own."""
    from kondge_billing import categories
    operator = as_role(dsn, "kondge_operator")
    try:
        run = operator.transaction
        added = run(lambda cur: categories.add(cur, "usd-demo", tariff="demo", operator="olga"))
        card = run(lambda cur: cards.add(cur, pin_key, "1000000057", "4321", "5.00", "USD",
                                         category="usd-demo", tariff="demo", operator="olga"))
        assert (added["tariff"], card["tariff"], card["category_tariff"]) == ("demo",) * 3
        gone = run(lambda cur: categories.modify(cur, "usd-demo", tariff=categories.NO_TARIFF,
                                                 operator="olga"))
        assert gone["tariff"] is None
        assert [c["tariff"] for c in operator.run(categories.all_categories)] == [None, None]
    finally:
        operator.close()


def test_the_call_path_cannot_credit_a_card_through_a_negative_cost(world, dsn):
    radius = as_role(dsn, "kondge_radius")
    try:
        card_id = world.run(lambda cur: (cur.execute(
            "SELECT id FROM kondge.card WHERE number = '1000000008'"), cur.fetchone())[1])["id"]
        for cost, duration in (("-5.00", 60), ("1.00", -60)):
            with pytest.raises(psycopg2.errors.CheckViolation):
                radius.run(lambda cur: calls.settle(
                    cur, gateway_id=1, call_key="neg", call_id="neg", leg="originate",
                    acct_session_id="", hold_id=None, card_id=card_id, charge=True,
                    user_name=None, caller=None, called=None, setup=None, connect=None,
                    disconnect=None, session_time=60, duration=duration, cause=None, flags=[],
                    digest="x", destination="447911123456", access_number=None,
                    category=None, version_id=None, plan_id=None, destination_id=None,
                    rate_prefix=None, price=None, cost=cost, currency="USD", granted=None,
                    authorised_at=None))
        balance = world.run(lambda cur: (cur.execute(
            "SELECT balance FROM kondge.card WHERE id = %s", (card_id,)), cur.fetchone())[1])
        assert balance["balance"] == 10
    finally:
        radius.close()
