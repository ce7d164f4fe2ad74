"""Which call-path commits wait for the WAL flush: a stage-1 login record
does not (it moves no money and is no accounting record); a refused login
(the counts of wrong PINs), a hold and every accounting record do, and the
relaxed setting never outlives the login's own transaction."""

from decimal import Decimal

import pytest

from kondge_billing.calls import cdrs, sessions
from kondge_billing.operations import demo
from kondge_billing.store.db import Database
from kondge_billing.store.pins import pin_hash

CARD, PIN = "1000000008", "1234"
ACCESS, DESTINATION = "18005550100", "447911123456"
PRICE = {"version_id": None, "plan_id": None, "destination_id": None, "prefix": "44",
         "currency": "USD"}


@pytest.fixture
def radius(db, dsn, pin_key):
    db.run(lambda cur: demo.load(cur, pin_key))
    database = Database(dsn.replace("user=kondge", "user=kondge_radius"))
    yield database
    database.close()


def commit_mode(cur) -> str:
    cur.execute("SELECT current_setting('synchronous_commit') AS mode")
    return cur.fetchone()["mode"]


def login(cur, hashed, called=ACCESS, call="call-1"):
    cur.execute("SELECT * FROM kondge.radius_card(%s, %s, NULL, %s, '15550001111', 1, %s, %s,"
                " NULL, now())", (CARD, hashed, called, call, call))
    return cur.fetchone()


def in_transaction(radius, work):
    """work(cur) and the commit mode it leaves, before the transaction commits."""
    return radius.transaction(lambda cur: (work(cur), commit_mode(cur)))


def test_a_stage_1_login_commits_without_waiting_for_the_flush(radius, pin_key):
    row, mode = in_transaction(radius, lambda cur: login(cur, pin_hash(pin_key, CARD, PIN)))
    assert row["refusal"] is None and row["stage"] == "login"
    assert mode == "off"
    # the login is stored all the same: stage 2's hold finds it
    held = radius.run(lambda cur: sessions.hold(
        cur, row["id"], 1, "call-1", None, DESTINATION, ACCESS, "standard", PRICE,
        Decimal("1.00"), 60, 300))
    assert held["outcome"] == "held"


def test_the_relaxed_commit_ends_with_the_login_s_transaction(radius, pin_key):
    radius.run(lambda cur: login(cur, pin_hash(pin_key, CARD, PIN)))
    assert radius.run(commit_mode) == "on"


def test_a_wrong_pin_is_counted_durably(radius, pin_key):
    row, mode = in_transaction(radius, lambda cur: login(cur, pin_hash(pin_key, CARD, "9999")))
    assert row["refusal"] == "wrong-pin"
    assert mode == "on"


def test_a_hold_and_accounting_records_wait_for_the_flush(radius, pin_key):
    card = radius.run(lambda cur: login(cur, pin_hash(pin_key, CARD, PIN)))["id"]
    held, mode = in_transaction(radius, lambda cur: sessions.hold(
        cur, card, 1, "call-1", None, DESTINATION, ACCESS, "standard", PRICE,
        Decimal("1.00"), 60, 300))
    assert held["outcome"] == "held" and mode == "on"
    for origin in ("answer", "originate"):
        row, mode = in_transaction(radius, lambda cur: cdrs.account(
            cur, status="start", gateway_id=1, billed_leg="originate", call_id="call-1",
            has_conf=True, origin=origin, call_type=None, acct_session_id="A1" + origin,
            user_name=CARD, card_number=CARD, caller_number=None, caller="15550001111",
            called=DESTINATION if origin == "originate" else ACCESS, setup=None,
            connect=None, disconnect=None, session_time=None, cause=None, flags=[],
            digest="d-" + origin))
        assert row["outcome"] == "recorded" and mode == "on", origin
