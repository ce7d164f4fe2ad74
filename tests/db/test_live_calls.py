"""Reservations, live calls and the sweep, against a real PostgreSQL."""

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from kondge_billing.operations import demo, stack
from kondge_billing.calls import sessions
from kondge_billing.store.db import Database
from kondge_billing.errors import CardInUse, CreditLimitReached, InsufficientBalance, ZeroBalance
from kondge_billing.store.gateways import GatewayDirectory, all_gateways
from kondge_billing.edge.request import access_request, accounting_record
from kondge_billing.calls.service import Billing, Grant, Login
from tests.support.cards import new_card
from tests.support.concurrency import at_once

NOW = datetime.now(timezone.utc)


@pytest.fixture
def world(db, pin_key):
    def setup(cur):
        demo.load(cur, pin_key)
        cur.execute("""INSERT INTO kondge.category (name, max_calls, max_call_seconds)
                       VALUES ('tenner', 100, 60), ('duo', 2, NULL)""")
        cur.execute("""INSERT INTO kondge.category (name, billing, credit_limit, max_calls)
                       VALUES ('account', 'postpaid', 5, 5)""")
    db.run(setup)
    return db


def conf(n):
    return f"h323-conf-id=0000{n:04X} 0F4411D6 AB5591F0 CBF3D765"


def req(number, called="447911123456", n=1, gw="127.0.0.1"):
    return access_request((("User-Name", number), ("User-Password", "1234"),
                           ("Called-Station-Id", called), ("h323-conf-id", conf(n)),
                           ("Kondge-Gateway-Address", gw)))


def auth(billing, request):
    return billing.authorize(billing.gateways.get(request.gateway_address), request)


def acct(billing, status, number, n=1, seconds=None, origin="originate", **extra):
    pairs = {"Acct-Status-Type": status, "User-Name": number, "h323-conf-id": conf(n),
             "h323-call-origin": f"h323-call-origin={origin}",
             "Called-Station-Id": "447911123456", "Kondge-Gateway-Address": "127.0.0.1"}
    if seconds is not None:
        pairs["Acct-Session-Time"] = str(seconds)
    pairs.update(extra)
    rec = accounting_record(tuple(pairs.items()), NOW)
    return billing.account(billing.gateways.get("127.0.0.1"), rec)


def card_row(db, number):
    return db.run(lambda cur: (cur.execute(
        "SELECT balance FROM kondge.card WHERE number = %s", (number,)), cur.fetchone())[1])


def test_a_hold_lowers_what_the_card_announces_and_grants(world, billing, pin_key):
    number = new_card(world, pin_key, "10.00", category="duo")
    grant = auth(billing, req(number, n=1))
    assert grant.seconds == 3996                               # 9.99 reserved
    login = auth(billing, req(number, "18005550100", n=2))
    assert login == Login(Decimal("0.01"), "USD", "en")
    with pytest.raises(InsufficientBalance):
        auth(billing, req(number, n=3))                       # 0.01 < one UK-mobile block


def test_reauthorising_the_same_call_replaces_its_own_hold(world, billing, pin_key):
    number = new_card(world, pin_key, "10.00")
    assert auth(billing, req(number, n=7)).seconds == 3996
    assert auth(billing, req(number, n=7)).seconds == 3996     # not refused as "in use"
    live = world.run(lambda cur: sessions.live(cur, number))
    assert len(live) == 1 and live[0]["amount"] == Decimal("9.9900")


def test_call_limit_per_category_answers_in_use(world, billing, pin_key):
    number = new_card(world, pin_key, "10.00")                 # standard: one call
    auth(billing, req(number, "15551230000", n=1))
    with pytest.raises(CardInUse):
        auth(billing, req(number, "15551230000", n=2))


def test_stop_settles_and_returns_the_unused_reservation(world, billing, pin_key):
    number = new_card(world, pin_key, "10.00")
    auth(billing, req(number, n=1))
    acct(billing, "Start", number, n=1)
    live = world.run(lambda cur: sessions.live(cur, number))
    assert live[0]["state"] == "live" and live[0]["elapsed"] is not None
    acct(billing, "Stop", number, n=1, seconds=125)
    assert card_row(world, number)["balance"] == Decimal("9.6850")
    assert world.run(lambda cur: sessions.live(cur, number)) == []
    assert auth(billing, req(number, "18005550100", n=2)).balance == Decimal("9.6850")


def test_a_start_after_its_own_stop_makes_nothing_live(world, billing, pin_key):
    number = new_card(world, pin_key, "10.00")
    auth(billing, req(number, n=1))
    acct(billing, "Stop", number, n=1, seconds=60)
    assert acct(billing, "Start", number, n=1).outcome == "recorded"
    assert world.run(lambda cur: sessions.live(cur, number)) == []
    assert card_row(world, number)["balance"] == Decimal("9.8500")


def test_a_call_nobody_authorised_is_recorded_flagged_and_charges_no_card(world, billing,
                                                                          pin_key):
    number = new_card(world, pin_key, "10.00")
    acct(billing, "Start", number, n=1)
    assert world.run(lambda cur: sessions.live(cur, number)) == []
    assert acct(billing, "Stop", number, n=1, seconds=60).charge == 0
    assert card_row(world, number)["balance"] == Decimal("10.00")
    cdr = world.run(lambda cur: (cur.execute("SELECT * FROM kondge.cdr"), cur.fetchone())[1])
    assert "no-authorisation" in cdr["flags"] and cdr["card_id"] is None
    assert cdr["card_number"] == number and cdr["charge"] == 0


def test_a_hold_made_without_a_conf_id_goes_live_with_the_calls_start(world, billing, pin_key):
    number = new_card(world, pin_key, "10.00")
    request = access_request((("User-Name", number), ("User-Password", "1234"),
                              ("Called-Station-Id", "447911123456"),
                              ("Kondge-Gateway-Address", "127.0.0.1")))
    assert auth(billing, request).seconds == 3996
    held = world.run(lambda cur: sessions.live(cur, number))
    assert held[0]["call_id"].startswith("auth:") and held[0]["state"] == "held"
    acct(billing, "Start", number, n=1)
    live = world.run(lambda cur: sessions.live(cur, number))
    assert [(c["state"], c["call_id"], c["amount"]) for c in live] == [
        ("live", conf(1).split("=")[1], Decimal("9.9900"))]
    acct(billing, "Stop", number, n=1, seconds=125)
    assert world.run(lambda cur: sessions.live(cur, number)) == []
    assert card_row(world, number)["balance"] == Decimal("9.6850")


def test_an_unstarted_hold_frees_its_slot_but_keeps_its_money_while_its_call_may_run(
        world, billing, pin_key):
    number = new_card(world, pin_key, "10.00")
    billing.hold_seconds = 0                   # the call did not start in time
    assert auth(billing, req(number, n=1)).seconds == 3996
    # a second call may start (the slot is free), but not on the money of the first:
    # its call may still connect and talk its whole grant
    assert auth(billing, req(number, "18005550100", n=2)).balance == Decimal("0.01")
    assert billing.sweep(grace_seconds=600) == {"holds_lapsed": 0, "sessions_closed": 0}
    # once the call could no longer be running, the hold lapses and reserves nothing
    world.run(lambda cur: cur.execute(
        "UPDATE kondge.reservation SET hold_expires_at = now() - interval '3997 seconds'"))
    assert billing.sweep(grace_seconds=600) == {"holds_lapsed": 1, "sessions_closed": 0}
    assert auth(billing, req(number, "18005550100", n=3)).balance == Decimal("10.00")
    # a Start that comes even later still finds its call's authorisation
    acct(billing, "Start", number, n=1)
    live = world.run(lambda cur: sessions.live(cur, number))
    assert [(c["state"], c["amount"]) for c in live] == [("live", Decimal("9.9900"))]
    assert "late-start" in live[0]["flags"]
    acct(billing, "Stop", number, n=1, seconds=60)
    assert card_row(world, number)["balance"] == Decimal("9.8500")


@pytest.mark.parametrize("interim, charged, flag", [
    (None, Decimal("9.9900"), "stop-missing-charged-granted"),
    (95, Decimal("0.2400"), "stop-missing-charged-interim")])
def test_sweep_closes_a_call_whose_stop_is_lost(world, billing, pin_key, interim, charged,
                                                  flag):
    number = new_card(world, pin_key, "10.00")
    auth(billing, req(number, n=1))
    acct(billing, "Start", number, n=1)
    if interim is not None:
        acct(billing, "Interim-Update", number, n=1, seconds=interim)
    assert billing.sweep(grace_seconds=600)["sessions_closed"] == 0      # not overdue yet
    assert billing.sweep(grace_seconds=-5000)["sessions_closed"] == 1
    assert card_row(world, number)["balance"] == Decimal("10.00") - charged
    cdr = world.run(lambda cur: (cur.execute(
        "SELECT * FROM kondge.cdr WHERE card_number = %s", (number,)), cur.fetchone())[1])
    assert {"stop-missing", flag} <= set(cdr["flags"])
    # the real Stop, arriving late, puts the charge right, once
    assert acct(billing, "Stop", number, n=1, seconds=125).outcome == "corrected"
    assert card_row(world, number)["balance"] == Decimal("9.6850")     # 126 s at 0.15
    assert acct(billing, "Stop", number, n=1, seconds=125).outcome == "duplicate"
    assert card_row(world, number)["balance"] == Decimal("9.6850")
    cdr = world.run(lambda cur: (cur.execute(
        "SELECT * FROM kondge.cdr WHERE card_number = %s", (number,)), cur.fetchone())[1])
    assert (cdr["duration"], cdr["charge"]) == (125, Decimal("0.3150"))
    assert "corrected" in cdr["flags"]
    ledger = world.run(lambda cur: (cur.execute(
        """SELECT kind, amount FROM kondge.ledger_entry l JOIN kondge.card c ON c.id = l.card_id
            WHERE c.number = %s ORDER BY l.id""", (number,)), cur.fetchall())[1])
    assert [e["kind"] for e in ledger] == ["issue", "call", "adjustment"]
    assert sum(e["amount"] for e in ledger) == Decimal("9.6850")
    assert world.run(lambda cur: (cur.execute("SELECT * FROM kondge.v_balance_mismatch"),
                                  cur.fetchall())[1]) == []


def test_the_supervisor_is_handed_the_billing_sweep_which_says_what_it_did(
        world, billing, pin_key, settings):
    sweep = stack.billing_sweep(settings, world)
    assert sweep() == ""
    number = new_card(world, pin_key, "10.00")
    auth(billing, req(number, n=1))
    world.run(lambda cur: cur.execute(
        "UPDATE kondge.reservation SET hold_expires_at = now() - interval '1 day'"))
    assert sweep() == "1 unstarted hold(s) lapsed, 0 call(s) without Stop closed"
    assert sweep() == ""


def test_postpaid_account_spends_down_to_its_credit_limit(world, billing, pin_key):
    number = new_card(world, pin_key, "0.00", category="account")
    login = auth(billing, req(number, "18005550100", n=1))
    assert login.balance == Decimal("5")                      # credit remaining
    grant = auth(billing, req(number, n=2))
    assert grant.seconds == 1998                              # 5 / 0.15 per minute, 6 s steps
    # the gateway lets it run 102 s past its grant: 5.25, of which 5 can be taken
    acct(billing, "Stop", number, n=2, seconds=grant.seconds + 102)
    assert card_row(world, number)["balance"] == Decimal("-5.0000")
    with pytest.raises(CreditLimitReached):
        auth(billing, req(number, "18005550100", n=4))


def test_fifty_simultaneous_calls_on_a_balance_for_ten_never_overspend(world, dsn, pin_key):
    number = new_card(world, pin_key, "1.50", category="tenner")   # 10 x 60 s at 0.15
    granted, refused, errors = [], [], []

    def caller(n, go):
        db = Database(dsn)
        billing = Billing(db, pin_key, GatewayDirectory(lambda: db.run(all_gateways)))
        try:
            go()
            outcome = auth(billing, req(number, n=n))
            granted.append((n, outcome))
        except (ZeroBalance, InsufficientBalance):
            refused.append(n)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            db.close()

    at_once(50, caller)
    assert not errors
    assert len(granted) == 10 and len(refused) == 40
    assert all(isinstance(g, Grant) and g.seconds == 60 for _, g in granted)
    # every granted call talks its whole time, some longer than granted
    billing = Billing(world, pin_key, GatewayDirectory(lambda: world.run(all_gateways)))
    for i, (n, grant) in enumerate(granted):
        acct(billing, "Start", number, n=n)
        acct(billing, "Stop", number, n=n, seconds=grant.seconds + (30 if i % 3 == 0 else 0))
    totals = world.run(lambda cur: (cur.execute(
        """SELECT (SELECT count(*) FROM kondge.cdr WHERE card_number = %(n)s) AS cdrs,
                  (SELECT sum(charge) FROM kondge.cdr WHERE card_number = %(n)s) AS charges,
                  (SELECT -sum(amount) FROM kondge.ledger_entry l JOIN kondge.card c
                     ON c.id = l.card_id WHERE c.number = %(n)s AND kind = 'call') AS debits,
                  (SELECT balance FROM kondge.card WHERE number = %(n)s) AS balance""",
        {"n": number}), cur.fetchone())[1])
    assert totals["cdrs"] == 10
    assert totals["charges"] == totals["debits"] == Decimal("1.50") - totals["balance"]
    assert totals["balance"] >= 0
