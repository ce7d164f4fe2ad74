"""The HA topology (`kondge ha up`): pg_auto_failover's primary and
synchronous standby, two RADIUS server sets on 127.0.0.1 and 127.0.0.2.

- a call authorised on one set and accounted on the other is billed once;
- the primary node killed (keeper and postmaster, SIGKILL) under load from
  gateways that fail over between the two sets: the standby is promoted by
  itself, calls go on, every call made is billed once, the books balance,
  and the old primary rejoins as a standby by itself;
- the standby held down: the primary serves writes again within a bound
  and the monitor says it serves alone (wait_primary).

Its own KONDGE_VAR (var/test/ha) and TCP ports (KONDGE_TEST_PG_PORT + 2,
+ 3, + 4). Every wait has a deadline.
"""

import json
import os
import socket
import threading
import time
from decimal import Decimal
from functools import cached_property

import pytest

from kondge_billing import ha
from kondge_billing.db import Database
from tests.conftest import TEST_VAR
from tests.e2e.test_faults import books, us_cost
from tests.support.cards import new_card
from tests.support.failover import FailoverClient, kill_node
from tests.support.load import LoadResult, conf_id, run_load
from tests.support.own_stack import OwnStack, started
from tests.support.waiting import poll, wait_for

OPENING = Decimal("100.00")
HOSTS = ("127.0.0.1", "127.0.0.2")


def port_free_on_both() -> int:
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
            a.bind((HOSTS[0], 0))
            port = a.getsockname()[1]
            try:
                for host in HOSTS[1:]:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                        b.bind((host, port))
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                        b.bind((host, port + 1))
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                    b.bind((HOSTS[0], port + 1))
            except OSError:
                continue
            return port
    raise AssertionError("no UDP port pair free on both addresses")


class Topology(OwnStack):
    def __init__(self, env):
        super().__init__(env, timeout=600)

    @cached_property
    def t(self):
        return ha.Topology(self.settings)

    def connect(self):
        return Database(self.t.dsn("kondge", "owner"), application_name="test-ha")

    def client(self, timeout=1.0):
        return FailoverClient(HOSTS, self.settings.auth_port, self.settings.acct_port,
                              timeout=timeout)

    def nodes(self):
        return {n["name"]: n for n in ha.node_states(self.t)}

    def wait(self, what, check, timeout):
        return wait_for(what, check, timeout, ignore=Exception,   # a node may be down meanwhile
                        detail=lambda: self.kondge("ha", "status").stdout)

    def books(self, numbers):
        return books(self, numbers)        # test_faults.py's, on this topology's database


@pytest.fixture(scope="module")
def topo(test_env):
    base = int(os.environ.get("KONDGE_TEST_PG_PORT", "5499")) + 2
    port = port_free_on_both()
    env = dict(test_env, KONDGE_VAR=str(TEST_VAR / "ha"), KONDGE_HA_PG_PORT=str(base),
               KONDGE_AUTH_PORT=str(port), KONDGE_ACCT_PORT=str(port + 1), KONDGE_WORKERS="2")
    yield from started(Topology(env), ("ha", "up"), ("ha", "down"))


def test_both_sets_serve_and_the_standby_is_synchronous(topo):
    status = topo.kondge("ha", "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    st = json.loads(status.stdout)
    assert st["primary"] == "node1"
    assert [r["sync_state"] for r in st["replication"]] in (["quorum"], ["sync"])
    for host in HOSTS:
        client = FailoverClient((host,), topo.settings.auth_port, topo.settings.acct_port)
        try:
            reply = client.access([("User-Name", "1000000008"), ("User-Password", "1234"),
                                   ("Called-Station-Id", "18005550100")])
        finally:
            client.close()
        assert reply is not None and reply.accepted, host


def test_a_call_authorised_on_one_set_and_accounted_on_the_other_is_billed_once(topo):
    card = new_card(topo.db, topo.key, str(OPENING))
    a = FailoverClient(HOSTS[:1], topo.settings.auth_port, topo.settings.acct_port, timeout=2)
    b = FailoverClient(HOSTS[1:], topo.settings.auth_port, topo.settings.acct_port, timeout=2)
    conf = conf_id()
    base = [("User-Name", card), ("User-Password", "1234"),
            ("Calling-Station-Id", "15550001111"), ("h323-conf-id", conf)]
    stop = [("Acct-Status-Type", "Stop"), ("Acct-Session-Id", conf[-8:]), ("User-Name", card),
            ("Calling-Station-Id", "15550001111"), ("Called-Station-Id", "15551230000"),
            ("h323-conf-id", conf), ("h323-call-origin", "h323-call-origin=originate"),
            ("Acct-Session-Time", 125)]
    try:
        assert a.access(base + [("Called-Station-Id", "18005550100")]).accepted
        assert a.access(base + [("Called-Station-Id", "15551230000")]).accepted
        assert b.accounting(stop) is not None
        assert a.accounting(stop + [("Acct-Delay-Time", 5)]) is not None   # retransmitted
    finally:
        a.close()
        b.close()
    row = topo.one("SELECT count(*) AS n, sum(charge) AS charge FROM kondge.cdr "
                   "WHERE card_number = %s", (card,))
    assert row["n"] == 1
    assert row["charge"] == us_cost(125)
    assert topo.one("SELECT balance FROM kondge.card WHERE number = %s",
                    (card,))["balance"] == OPENING - us_cost(125)


def test_primary_killed_under_load_standby_takes_over_and_nothing_is_lost(topo):
    numbers = [new_card(topo.db, topo.key, str(OPENING)) for _ in range(6)]
    primary = topo.nodes()
    assert primary["node1"]["state"] == "primary"
    killed = {}

    def kill_when_calls_flow(result):
        poll(lambda: len(result.made) >= 6, 60, step=0.05)
        kill_node(topo.t, "node1")
        killed["at"] = time.monotonic()
        killed["made"] = len(result.made)

    result = LoadResult()
    killer = threading.Thread(target=kill_when_calls_flow, args=(result,))
    killer.start()
    run_load(lambda: topo.client(timeout=0.7), numbers, "1234", 8, "15551230000",
             (1, 300), limit=150, result=result)
    killer.join(5)
    assert "at" in killed, "the primary was never killed"
    assert not result.errors, result.errors[:3]
    assert len(result.made) > killed["made"], "no call was made after the kill"

    topo.wait("node2 promoted", lambda: topo.nodes()["node2"]["state"] in (
        "primary", "wait_primary"), 60)
    made = result.made
    topo.wait("every call stored", lambda: topo.books(numbers)["cdrs"] >= len(made), 60)
    b = topo.books(numbers)
    expected = sum(us_cost(c.billed) for c in made)
    assert b["cdrs"] == len(made)                      # none lost, none twice
    assert b["charges"] == b["debits"] == OPENING * len(numbers) - b["balance"] == expected
    assert b["mismatched"] == 0
    # the old primary comes back by itself, as a standby of the new one
    topo.wait("node1 rejoined as a standby", lambda: (
        topo.nodes()["node1"]["state"] == "secondary"
        and topo.nodes()["node2"]["state"] == "primary"), 120)


def test_standby_held_down_the_primary_serves_alone_and_says_so(topo):
    nodes = topo.nodes()
    standby = next(n for n, v in nodes.items() if v["state"] == "secondary")
    primary = next(n for n, v in nodes.items() if v["state"] == "primary")
    held = topo.kondge("ha", "hold", standby)
    assert held.returncode == 0, held.stderr
    try:
        card = new_card(topo.db, topo.key, str(OPENING))   # a write: waits for no standby
        assert topo.one("SELECT count(*) AS n FROM kondge.card WHERE number = %s",
                        (card,))["n"] == 1
        topo.wait("the primary serving alone", lambda: topo.nodes()[primary]["state"]
                  == "wait_primary", 30)
        status = topo.kondge("ha", "status")
        assert status.returncode == 3                         # not healthy: it says so
        assert "wait_primary" in status.stdout
        # a call goes through while the standby is away
        result = run_load(lambda: topo.client(), [card], "1234", 1, "15551230000", (30, 30),
                          limit=60)
        assert not result.errors and len(result.made) == 1
    finally:
        released = topo.kondge("ha", "release", standby)
        assert released.returncode == 0, released.stderr
    topo.wait("the standby back in sync", lambda: ha.both_in_sync(topo.t), 120)
