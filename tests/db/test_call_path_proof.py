"""What a process holding the call path's role (kondge_radius) can get from
its functions, whatever arguments it passes: a card's data only with its PIN
or a caller number bound to it; a hold or a caller binding only on a card
proven for that call; no way around the limits on wrong PINs."""

from decimal import Decimal

import psycopg2
import pytest

from kondge_billing.store import callers, cards
from kondge_billing.operations import demo
from kondge_billing.calls import sessions
from kondge_billing.store.pins import pin_hash
from kondge_billing.store.db import Database

CARD, PIN = "1000000008", "1234"
OTHER = "1000000016"
PRICE = {"version_id": None, "plan_id": None, "destination_id": None, "prefix": "44",
         "currency": "USD"}
DATA = ("id", "number", "balance", "currency", "status", "expires_at", "language", "category",
        "billing", "credit_limit", "max_calls", "held", "active_calls", "stage",
        "rating_version_id", "rating_plan_id", "rating_destination_id", "rating_prefix")


def as_role(dsn, role):
    return Database(dsn.replace("user=kondge", f"user={role}"))


@pytest.fixture
def world(db, pin_key):
    db.run(lambda cur: demo.load(cur, pin_key))
    return db


@pytest.fixture
def radius(world, dsn):
    database = as_role(dsn, "kondge_radius")
    yield database
    database.close()


def card_id(db, number):
    return db.run(lambda cur: (cur.execute(
        "SELECT id FROM kondge.card WHERE number = %s", (number,)), cur.fetchone())[1])["id"]


def radius_card(radius, number, hashed, caller=None, called="18005550100", gateway=1,
                call="call-1"):
    """kondge.radius_card as the role calls it, every argument its own."""
    return radius.run(lambda cur: (cur.execute(
        "SELECT * FROM kondge.radius_card(%s, %s, %s, %s, %s, %s, %s, %s, NULL, now())",
        (number, hashed, caller, called, caller, gateway, call, call)), cur.fetchall())[1])


def hold(radius, card, gateway=1, call="call-1"):
    return radius.run(lambda cur: sessions.hold(
        cur, card, gateway, call, None, "447911123456", None, "standard", PRICE,
        Decimal("1.00"), 60, 300))


def held_rows(db):
    return db.run(lambda cur: (cur.execute("SELECT count(*) AS n FROM kondge.reservation"),
                               cur.fetchone())[1])["n"]


@pytest.mark.parametrize("hashed", [None, "", "hmac-sha256$00", "wrong"])
def test_a_card_number_without_its_pin_gets_no_data(radius, pin_key, hashed):
    for called in ("18005550100", "447911123456"):          # stage 1 and stage 2
        [row] = radius_card(radius, CARD, hashed, called=called)
        assert row["refusal"] == "wrong-pin"
        assert all(row[c] is None for c in DATA), row


def test_a_number_that_is_no_card_gets_no_data(radius, pin_key):
    [row] = radius_card(radius, "1999999996", pin_hash(pin_key, "1999999996", PIN))
    assert row["refusal"] == "unknown" and all(row[c] is None for c in DATA)


def test_only_a_bound_caller_number_logs_in_without_a_pin(radius, world):
    assert radius_card(radius, None, None, caller="15550000000") == []
    world.run(lambda cur: callers.bind(cur, CARD, ["15550000000"]))
    [row] = radius_card(radius, None, None, caller="15550000000")
    assert row["refusal"] is None and row["balance"] == Decimal("10.00")


def test_the_role_cannot_guess_around_the_limits(radius, pin_key):
    """Each try with its own caller number and gateway, as the role may pass
    them: the card number still locks, and then its right PIN is refused."""
    for i in range(5):
        [row] = radius_card(radius, CARD, pin_hash(pin_key, CARD, f"{i:04d}"),
                            caller=f"1555000{i:04d}", gateway=100 + i)
        assert row["refusal"] == "wrong-pin"
    [row] = radius_card(radius, CARD, pin_hash(pin_key, CARD, PIN), caller="15559999999",
                        gateway=999)
    assert row["refusal"] == "card-locked" and row["balance"] is None


@pytest.mark.parametrize("sql", [
    "UPDATE kondge.pin_policy SET card_tries = 0",
    "DELETE FROM kondge.pin_guard",
    "SELECT * FROM kondge.pin_guard",
    "SELECT kondge.op_pin_unlock('x', 'card', '1000000008', '1000000008')",
    "SELECT kondge.pin_failed('1000000016', NULL, 1)",
    "SELECT kondge.radius_auto_bind(1, '15550000000')",          # the old, unproven one
])
def test_the_role_changes_no_counter_or_limit(radius, sql):
    with pytest.raises((psycopg2.errors.InsufficientPrivilege,
                        psycopg2.errors.UndefinedFunction)):
        radius.run(lambda cur: cur.execute(sql))


def test_a_hold_needs_a_login_of_that_card_on_that_gateway_and_call(radius, world, pin_key):
    card, other = card_id(world, CARD), card_id(world, OTHER)
    assert hold(radius, card)["outcome"] == "unproven"
    radius_card(radius, CARD, pin_hash(pin_key, CARD, "9999"))       # a wrong PIN proves nothing
    assert hold(radius, card)["outcome"] == "unproven"
    assert held_rows(world) == 0

    [row] = radius_card(radius, CARD, pin_hash(pin_key, CARD, PIN))
    assert row["refusal"] is None
    for wrong in (dict(card=other), dict(card=card, gateway=2), dict(card=card, call="call-2")):
        assert hold(radius, **wrong)["outcome"] == "unproven", wrong
    assert held_rows(world) == 0
    assert hold(radius, card)["outcome"] == "held"
    assert held_rows(world) == 1


def test_stage_2_alone_proves_its_card_for_its_hold(radius, world, pin_key):
    """A gateway that sends no stage 1 (or no access number): stage 2's own
    check of the PIN is the proof."""
    [row] = radius_card(radius, CARD, pin_hash(pin_key, CARD, PIN), called="447911123456",
                        call="auth:solo")
    assert row["stage"] == "destination" and row["rating_version_id"] is not None
    assert hold(radius, card_id(world, CARD), call="auth:solo")["outcome"] == "held"


def test_a_caller_binding_needs_a_login_of_that_card(radius, world, pin_key):
    world.run(lambda cur: cur.execute("UPDATE kondge.category SET auto_bind = true"))
    card = card_id(world, CARD)

    def bind(call):
        return radius.run(lambda cur: callers.auto_bind(cur, card, "15550000000", 1, call))
    assert bind("call-1") is False
    radius_card(radius, CARD, pin_hash(pin_key, CARD, PIN), caller="15550000000")
    assert bind("call-2") is False
    assert bind("call-1") is True
    bound = world.run(lambda cur: callers.list_callers(cur, CARD))
    assert [b["caller"] for b in bound] == ["15550000000"]


def test_what_operators_see_of_a_card_s_pin(world, dsn, pin_key):
    from kondge_billing.calls import pin_guard
    from tests.db.test_pin_guard import policy
    radius = as_role(dsn, "kondge_radius")
    operator = as_role(dsn, "kondge_operator")
    try:
        policy(world, card_tries=2)
        for _ in range(2):
            radius_card(radius, CARD, "wrong")
        state = operator.run(lambda cur: pin_guard.card_state(cur, CARD))
        assert state["pin_locked"] != "no" and state["pin_locks_in_a_row"] == 1
        done = operator.transaction(lambda cur: pin_guard.unlock(cur, "card", CARD, "olga"))
        assert done["was_locked"]
        [row] = radius_card(radius, CARD, pin_hash(pin_key, CARD, PIN))
        assert row["refusal"] is None
        with pytest.raises(cards.CardError, match="no card 1999999996"):
            operator.transaction(lambda cur: pin_guard.unlock(cur, "card", "1999999996", "olga"))
    finally:
        radius.close()
        operator.close()
