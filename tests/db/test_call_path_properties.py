"""The books always balance, whatever the gateways send and in whatever order.

A property test of the call path on a real PostgreSQL: a few cards, a few
calls each, and every packet of every call (stage 1 and 2, both legs'
Start, Interim and Stop) sent in a random order, some twice (a
retransmission), some never (lost), some with attributes missing, holds
expiring and the sweep running in between. After it, for every card:

- its balance is the sum of its ledger (reconciliation);
- what it was charged is the sum of its CDRs' charges and of its ledger's
  call debits (one leg billed per call, never two);
- a prepaid card never goes below zero, a postpaid one never below minus
  its credit limit;
- no call that talked is free without a flag that says why.
"""

from datetime import datetime, timezone
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kondge_billing.operations import demo
from kondge_billing.store import gateways
from kondge_billing.errors import Refusal
from kondge_billing.edge.request import access_request, accounting_record
from tests.support.cards import new_card

DESTINATIONS = ["447911123456", "442071234567", "15551230000"]
# why a CDR may be free although the call talked
FREE_BECAUSE = {"no-authorisation", "unrated", "unknown-card", "currency-mismatch",
                "overrun", "duration-unknown"}


@st.composite
def calls(draw):
    """The packets of one call, each with what may go wrong with it."""
    dest = draw(st.sampled_from(DESTINATIONS))
    seconds = draw(st.integers(0, 400))
    call = {"card": draw(st.integers(0, 2)), "dest": dest, "seconds": seconds,
            "no_origin": draw(st.booleans()), "no_user": draw(st.booleans()),
            "session_time": draw(st.sampled_from(["given", "given", "missing", "zero"]))}
    packets = [("stage1",), ("stage2",), ("start", "answer"), ("start", "originate"),
               ("interim", "originate"), ("stop", "originate"), ("stop", "answer")]
    kept = [p for p in packets if p[0] == "stage2" or draw(st.integers(0, 9)) > 0]
    return call, kept


def conf(n):
    return f"{n:08X} 0F4411D6 AB5591F0 CBF3D765"


def packet(call, n, what, number):
    kind = what[0]
    base = [("Kondge-Gateway-Address", "127.0.0.1"), ("h323-conf-id", f"h323-conf-id={conf(n)}"),
            ("Calling-Station-Id", "15551234567")]
    if kind in ("stage1", "stage2"):
        called = "18005550100" if kind == "stage1" else call["dest"]
        return "auth", access_request(tuple(base + [
            ("User-Name", number), ("User-Password", "1234"), ("Called-Station-Id", called)]))
    leg = what[1]
    pairs = base + [("Acct-Status-Type", {"start": "Start", "interim": "Interim-Update",
                                          "stop": "Stop"}[kind]),
                    ("Acct-Session-Id", f"{n:04X}{leg[0]}"),
                    ("Called-Station-Id", call["dest"] if leg == "originate" else "18005550100"),
                    ("h323-call-type", "h323-call-type=" + ("VoIP" if leg == "originate"
                                                            else "Telephony"))]
    if not call["no_origin"]:
        pairs.append(("h323-call-origin", f"h323-call-origin={leg}"))
    if not call["no_user"]:
        pairs.append(("User-Name", number))
    if kind == "interim":
        pairs.append(("Acct-Session-Time", str(call["seconds"] // 2)))
    elif kind == "stop":
        seconds = call["seconds"] + (20 if leg == "answer" else 0)
        if call["session_time"] == "given":
            pairs.append(("Acct-Session-Time", str(seconds)))
        elif call["session_time"] == "zero":
            pairs.append(("Acct-Session-Time", "0"))
    return "acct", accounting_record(tuple(pairs), datetime.now(timezone.utc))


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_any_order_of_packets_keeps_the_books(world, billing, pin_key, data):
    cards_ = [new_card(world, pin_key, amount) for amount in ("1.00", "3.00", "0.30")]
    plan = data.draw(st.lists(calls(), min_size=1, max_size=4))
    first = data.draw(st.integers(0, 2 ** 24))
    events = []
    for i, (call, packets) in enumerate(plan):
        for what in packets:
            events.append((first + i, call, what))
            if data.draw(st.integers(0, 5)) == 0:              # sent again
                events.append((first + i, call, what))
    order = data.draw(st.permutations(events))
    gw = billing.gateways.get("127.0.0.1")
    for step, (n, call, what) in enumerate(order):
        how, request = packet(call, n, what, cards_[call["card"]])
        if how == "auth":
            try:
                billing.authorize(gw, request)
            except Refusal:
                pass
        else:
            billing.account(gw, request)
        chance = data.draw(st.integers(0, 19))
        if chance == 0:                                         # holds expire
            world.run(lambda cur: cur.execute(
                "UPDATE kondge.reservation SET hold_expires_at = now() - interval '1 second'"))
        elif chance == 1:
            billing.sweep(grace_seconds=600)
    billing.sweep(grace_seconds=-10 ** 7)                       # every Stop still missing: lost

    for number, opening in zip(cards_, (Decimal("1.00"), Decimal("3.00"), Decimal("0.30"))):
        books = world.run(lambda cur: (cur.execute(
            """SELECT c.balance,
                      (SELECT coalesce(sum(amount), 0) FROM kondge.ledger_entry l
                        WHERE l.card_id = c.id) AS ledger,
                      (SELECT coalesce(sum(-amount), 0) FROM kondge.ledger_entry l
                        WHERE l.card_id = c.id AND kind IN ('call', 'adjustment')) AS debits,
                      (SELECT coalesce(sum(charge), 0) FROM kondge.cdr d
                        WHERE d.card_id = c.id) AS charges
                 FROM kondge.card c WHERE c.number = %s""", (number,)), cur.fetchone())[1])
        assert books["balance"] == books["ledger"]
        assert opening - books["balance"] == books["debits"] == books["charges"]
        assert books["balance"] >= 0
    free = world.run(lambda cur: (cur.execute(
        """SELECT call_key, flags, cost FROM kondge.cdr
            WHERE duration > 0 AND charge = 0 AND cost > 0"""), cur.fetchall())[1])
    for cdr in free:
        assert FREE_BECAUSE & set(cdr["flags"]), cdr
    # the incoming leg is never billed (the gateway bills the outgoing one)
    billed = world.run(lambda cur: (cur.execute(
        "SELECT leg, charge, flags FROM kondge.cdr WHERE leg <> 'originate'"),
        cur.fetchall())[1])
    assert all(c["charge"] == 0 and "no-authorisation" in c["flags"] for c in billed), billed


def _world(db, pin_key):
    db.run(lambda cur: (demo.load(cur, pin_key),
                        gateways.add(cur, "quintum-1", "127.0.0.2", "q-secret", "quintum")))
    return db


import pytest  # noqa: E402


@pytest.fixture
def world(db, pin_key):
    return _world(db, pin_key)
