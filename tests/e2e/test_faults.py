"""Fault tests: retransmissions, a database outage, a killed FreeRADIUS.

Each drives complete calls through the real server and then checks the
books: CDRs = calls made, the sum of charges = the sum of ledger debits =
the total balance change = what the tariff says the calls cost, and no
prepaid balance below zero. Each is bounded in time.
"""

import json
import os
import signal
import threading
import time
from decimal import ROUND_UP, Decimal

import pytest

from kondge_billing.operations import stack
from kondge_billing.store.pins import load_key
from tests.support.cards import new_card
from tests.support.concurrency import at_once
from tests.support.load import run_load
from tests.support.waiting import poll



def us_cost(seconds: int) -> Decimal:
    """The demo tariff's price of a call to prefix 1, worked out by hand:
    0.02 a minute, 60 s first, then 6 s steps, rounded up to 4 decimals."""
    if seconds <= 0:
        return Decimal("0.0000")
    billed = 60 if seconds <= 60 else 60 + -(-(seconds - 60) // 6) * 6
    return (Decimal("0.02") * billed / 60).quantize(Decimal("0.0001"), rounding=ROUND_UP)

OPENING = Decimal("100.00")


@pytest.fixture
def cards_for(stack_ready):
    key = load_key(stack_ready.settings.pin_key_file)
    return lambda n: [new_card(stack_ready.db, key, str(OPENING)) for _ in range(n)]


def books(service, numbers):
    return service.db.run(lambda cur: (cur.execute(
        """SELECT (SELECT count(*) FROM kondge.cdr WHERE card_number = ANY(%(n)s)) AS cdrs,
                  (SELECT coalesce(sum(charge), 0) FROM kondge.cdr
                    WHERE card_number = ANY(%(n)s)) AS charges,
                  (SELECT coalesce(-sum(l.amount), 0) FROM kondge.ledger_entry l
                     JOIN kondge.card c ON c.id = l.card_id
                    WHERE c.number = ANY(%(n)s) AND l.kind = 'call') AS debits,
                  (SELECT sum(balance) FROM kondge.card WHERE number = ANY(%(n)s)) AS balance,
                  (SELECT min(balance) FROM kondge.card WHERE number = ANY(%(n)s)) AS lowest,
                  (SELECT count(*) FROM kondge.v_balance_mismatch) AS mismatched""",
        {"n": numbers}), cur.fetchone())[1])


def wait_for_cdrs(service, numbers, count, timeout=90):
    poll(lambda: books(service, numbers)["cdrs"] >= count, timeout, step=0.5)


def assert_books(service, numbers, result):
    assert not result.errors, result.errors[:3]
    made = result.made
    assert made, "no call was made"
    b = books(service, numbers)
    expected = sum(us_cost(c.billed) for c in made)
    assert b["cdrs"] == len(made)
    assert b["charges"] == b["debits"] == OPENING * len(numbers) - b["balance"] == expected
    assert b["lowest"] >= 0
    assert b["mismatched"] == 0


def test_retransmitted_accounting_is_charged_once(stack_ready, cards_for):
    numbers = cards_for(10)
    result = run_load(lambda: stack_ready.client(timeout=1.0), numbers, "1234", 10,
                      "15551230000", (1, 400), duplicate_share=0.2, limit=120)
    assert result.retransmitted > 0.1 * 4 * len(result.calls)
    assert_books(stack_ready, numbers, result)


def test_database_stopped_for_30_seconds_mid_load(stack_ready, cards_for):
    numbers = cards_for(8)
    s = stack_ready.settings
    outage = {}

    def outage_30s():
        time.sleep(1.0)
        stack.db_stop(s)
        outage["stopped"] = time.monotonic()
        time.sleep(30)
        stack.db_start(s)
        outage["started"] = time.monotonic()

    t = threading.Thread(target=outage_30s)
    t.start()
    try:
        result = run_load(lambda: stack_ready.client(timeout=1.0), numbers, "1234", 12,
                          "15551230000", (1, 300), pause=0.2, limit=150)
    finally:
        t.join(60)
        stack.db_start(s)
    assert outage["started"] - outage["stopped"] >= 30
    wait_for_cdrs(stack_ready, numbers, len(result.made))
    assert_books(stack_ready, numbers, result)


def test_a_retransmission_after_an_unanswered_request_is_answered(stack_ready, card):
    """A gateway retries the very same packet (same id and authenticator) every
    3 s. While the database is down it gets no answer; once the database is
    back, the next retransmission is answered."""
    s = stack_ready.settings
    client = stack_ready.client(timeout=3.0)
    send = client.prepared_access([("User-Name", card), ("User-Password", "1234"),
                                   ("Called-Station-Id", "18005550100")])
    try:
        stack.db_stop(s)
        try:
            assert send(tries=3) is None                 # 9 s of retransmissions
        finally:
            stack.db_start(s)
        reply = send(tries=5)
        assert reply is not None and reply.accepted
    finally:
        client.close()
        stack.db_start(s)


def test_freeradius_killed_mid_load(stack_ready, cards_for):
    numbers = cards_for(8)
    s = stack_ready.settings
    killed = []

    def kill_twice():
        # the front end the gateways talk to, then a worker running the hook
        for name in ("freeradius", "worker-1"):
            time.sleep(1.5)
            pid = stack.radius_pids(s).get(name)
            if pid:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    t = threading.Thread(target=kill_twice)
    t.start()
    result = run_load(lambda: stack_ready.client(timeout=1.0), numbers, "1234", 12,
                      "15551230000", (1, 300), pause=0.1, limit=120)
    t.join(30)
    assert len(killed) == 2
    wait_for_cdrs(stack_ready, numbers, len(result.made))
    assert_books(stack_ready, numbers, result)


def test_fifty_simultaneous_calls_on_a_balance_for_ten(stack_ready):
    """Through the real server: 50 calls at once on one card that pays for ten."""
    stack_ready.db.run(lambda cur: cur.execute(
        """INSERT INTO kondge.category (name, max_calls, max_call_seconds)
           VALUES ('tenner', 100, 60) ON CONFLICT DO NOTHING"""))
    number = new_card(stack_ready.db, load_key(stack_ready.settings.pin_key_file), "0.20",
                      category="tenner")               # 10 x 60 s at 0.02 = 0.20
    grants, refusals = [], []

    def caller(i, go):
        client = stack_ready.client(timeout=3.0)
        try:
            go()
            reply = client.access([("User-Name", number), ("User-Password", "1234"),
                                   ("Called-Station-Id", "15551230000"),
                                   ("h323-conf-id", f"h323-conf-id=5050{i:04X} 1 2 3")],
                                  tries=3)
            (grants if reply.accepted else refusals).append(reply)
        finally:
            client.close()

    at_once(50, caller)
    assert len(grants) == 10 and len(refusals) == 40
    assert {g.h323("h323-credit-time") for g in grants} == {"60"}
    assert {r.h323("h323-return-code") for r in refusals} <= {"4", "12"}
    live = stack_ready.kondge("--json", "sessions", "list", "--card", number)
    held = json.loads(live.stdout)
    assert len(held) == 10 and sum(Decimal(h["amount"]) for h in held) == Decimal("0.20")
