"""The HA topology (`kondge ha up`): pg_auto_failover's primary and
synchronous standby, two RADIUS server sets on 127.0.0.1 and 127.0.0.2.

- a call authorised on one set and accounted on the other is billed once;
- the primary's postmaster alone killed (SIGKILL) under load: its keeper
  starts it again (and the standby may have been promoted meanwhile),
  calls go on, every call billed once, a primary and a standby in sync;
- the primary node killed (keeper and postmaster, SIGKILL) under load from
  gateways that fail over between the two sets: the standby is promoted by
  itself, calls go on, every call made is billed once, the books balance,
  and the old primary rejoins as a standby by itself;
- the standby held down: the primary serves writes again within a bound
  and the monitor says it serves alone (wait_primary);
- `kondge ha restore --to TIME`: both nodes back at that moment (the calls
  before it kept, those after it gone, the books balanced), the standby
  copied again and in sync, calls served on the restored database;
  restored to the end of the archive, nothing is lost, and a Stop sent
  while the database was down for it is stored, once;
- each set's web portal (on the set's address) logs a card holder in
  through the multi-host connection string, as kondge_web, whichever
  node is primary; a wrong PIN logs nobody in.

Its own KONDGE_VAR (var/test/ha) and TCP ports (KONDGE_TEST_PG_PORT + 2,
+ 3, + 4). Every wait has a deadline.
"""

import json
import os
import pwd
import signal
import socket
import subprocess
import threading
import urllib.parse
import urllib.request
from decimal import Decimal
from functools import cached_property
from http.cookiejar import CookieJar

import psycopg2
import pytest

from kondge_billing.operations import ha
from kondge_billing.store.db import Database
from tests.conftest import HOME, KONDGE, TEST_VAR
from tests.e2e.test_faults import books, us_cost
from tests.support.cards import new_card
from tests.support.failover import FailoverClient, kill_node
from tests.support.load import LoadResult, conf_id, run_load
from tests.support.own_stack import OwnStack, started
from tests.support.waiting import poll, wait_for

OPENING = Decimal("100.00")
HOSTS = ("127.0.0.1", "127.0.0.2")


def port_free_on_both(kind=socket.SOCK_DGRAM) -> int:
    """A port that, with the next one, is free on both addresses (UDP, or `kind`)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, kind) as a:
            a.bind((HOSTS[0], 0))
            port = a.getsockname()[1]
            try:
                for host in HOSTS[1:]:
                    with socket.socket(socket.AF_INET, kind) as b:
                        b.bind((host, port))
                    with socket.socket(socket.AF_INET, kind) as b:
                        b.bind((host, port + 1))
                with socket.socket(socket.AF_INET, kind) as b:
                    b.bind((HOSTS[0], port + 1))
            except OSError:
                continue
            return port
    raise AssertionError("no port pair free on both addresses")


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
               KONDGE_AUTH_PORT=str(port), KONDGE_ACCT_PORT=str(port + 1), KONDGE_WORKERS="2",
               # the sets' portals: not the suite's service's port on 127.0.0.1
               KONDGE_WEB_PORT=str(port_free_on_both(socket.SOCK_STREAM)))
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


def call_pairs(card, seconds):
    """A call's Access-Request pairs (without Called-Station-Id) and its
    originate leg's Stop after `seconds` of talk."""
    conf = conf_id()
    base = [("User-Name", card), ("User-Password", "1234"),
            ("Calling-Station-Id", "15550001111"), ("h323-conf-id", conf)]
    stop = [("Acct-Status-Type", "Stop"), ("Acct-Session-Id", conf[-8:]), ("User-Name", card),
            ("Calling-Station-Id", "15550001111"), ("Called-Station-Id", "15551230000"),
            ("h323-conf-id", conf), ("h323-call-origin", "h323-call-origin=originate"),
            ("Acct-Session-Time", seconds)]
    return base, stop


def test_a_call_authorised_on_one_set_and_accounted_on_the_other_is_billed_once(topo):
    card = new_card(topo.db, topo.key, str(OPENING))
    a = FailoverClient(HOSTS[:1], topo.settings.auth_port, topo.settings.acct_port, timeout=2)
    b = FailoverClient(HOSTS[1:], topo.settings.auth_port, topo.settings.acct_port, timeout=2)
    base, stop = call_pairs(card, 125)
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


def load_with_a_kill(topo, numbers, per_card, limit, kill):
    """Calls from gateways that fail over, `kill()` once a call per card is
    made; the calls, and how many were made before the kill."""
    killed = {}

    def kill_when_calls_flow(result):
        poll(lambda: len(result.made) >= len(numbers), 60, step=0.05)
        kill()
        killed["made"] = len(result.made)

    result = LoadResult()
    killer = threading.Thread(target=kill_when_calls_flow, args=(result,))
    killer.start()
    run_load(lambda: topo.client(timeout=0.7), numbers, "1234", per_card, "15551230000",
             (1, 300), limit=limit, result=result)
    killer.join(5)
    assert "made" in killed, "the kill never happened"
    assert not result.errors, result.errors[:3]
    assert len(result.made) > killed["made"], "no call was made after the kill"
    return result.made


def assert_billed_once(topo, numbers, made):
    """Every call made is one CDR, charged the tariff's price, in the ledger once."""
    topo.wait("every call stored", lambda: topo.books(numbers)["cdrs"] >= len(made), 60)
    b = topo.books(numbers)
    assert b["cdrs"] == len(made)                      # none lost, none twice
    assert b["charges"] == b["debits"] == OPENING * len(numbers) - b["balance"] == sum(
        us_cost(c.billed) for c in made)
    assert b["mismatched"] == 0


def test_primary_postmaster_killed_a_primary_serves_again_and_nothing_is_lost(topo):
    numbers = [new_card(topo.db, topo.key, str(OPENING)) for _ in range(4)]
    primary = ha.primary_name(topo.t)
    old = ha.postmaster_pid(topo.t, primary)
    made = load_with_a_kill(topo, numbers, 6, 120, lambda: os.kill(old, signal.SIGKILL))
    assert_billed_once(topo, numbers, made)
    # its keeper starts PostgreSQL again; if the keeper told the monitor it
    # was down first, the standby was promoted meanwhile (both are
    # measured in make bench-ha): either way, a primary and a standby in sync
    topo.wait("a primary and its standby in sync", lambda: ha.both_in_sync(topo.t), 120)
    assert ha.postmaster_pid(topo.t, primary) not in (None, old)


def test_primary_killed_under_load_standby_takes_over_and_nothing_is_lost(topo):
    numbers = [new_card(topo.db, topo.key, str(OPENING)) for _ in range(6)]
    primary = ha.primary_name(topo.t)
    standby = next(n for n in ha.NODES if n != primary)
    made = load_with_a_kill(topo, numbers, 8, 150, lambda: kill_node(topo.t, primary))
    topo.wait(f"{standby} promoted", lambda: topo.nodes()[standby]["state"] in (
        "primary", "wait_primary"), 60)
    assert_billed_once(topo, numbers, made)
    # the old primary comes back by itself, as a standby of the new one
    topo.wait(f"{primary} rejoined as a standby", lambda: (
        topo.nodes()[primary]["state"] == "secondary"
        and topo.nodes()[standby]["state"] == "primary"), 120)


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


def portal_login(base, number, pin):
    """Log in to the portal at `base` over plain HTTP: the status of the
    login post, where it sends the browser, and the account page if any."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(base + "/login", timeout=10) as first:
        csrf = first.read().decode().split('name="csrf" value="')[1].split('"')[0]
    data = urllib.parse.urlencode({"number": number, "pin": pin, "csrf": csrf}).encode()
    with opener.open(base + "/login", data=data, timeout=20) as response:
        return response.url, response.read().decode(), [c.name for c in jar]


def test_the_portal_of_each_set_logs_a_card_holder_in_on_the_primary(topo):
    card = new_card(topo.db, topo.key, str(OPENING))
    port = topo.settings.web_port
    assert port, "the suite gives the portal a port"
    for host in HOSTS:
        base = f"http://{host}:{port}"
        url, page, cookies = portal_login(base, card, "1234")
        assert url == base + "/account", (host, url)
        assert f"Card {card}" in page and "100.00" in page
        assert "kondge_session" in cookies
        url, _page, cookies = portal_login(base, card, "9999")     # a wrong PIN
        assert url == base + "/login" and "kondge_session" not in cookies
    # the portal connected as kondge_web, whose password only its user can read
    web = topo.t.pgpass("web")
    assert web.read_text().startswith("*:*:*:kondge_web:")
    assert web.stat().st_mode & 0o777 == 0o600
    assert web.stat().st_uid == pwd.getpwnam(topo.settings.web_user).pw_uid
    assert "kondge_web" not in topo.t.pgpass("radius").read_text()
    # one session per login that succeeded, none for a wrong PIN
    assert topo.one("SELECT count(*) AS n FROM kondge.web_session s JOIN kondge.card c "
                    "ON c.id = s.card_id WHERE c.number = %s", (card,))["n"] == len(HOSTS)


def test_restore_of_the_topology_to_a_moment(topo):
    cards = [new_card(topo.db, topo.key, str(OPENING)) for _ in range(2)]

    def calls():
        result = run_load(lambda: topo.client(), cards, "1234", 1, "15551230000", (1, 300),
                          limit=90)
        assert not result.errors and len(result.made) == len(cards), result.errors[:3]
        return result.made
    kept = calls()
    full = topo.kondge("ha", "backup", "--full", "--json")
    assert full.returncode == 0, full.stdout + full.stderr
    kept += calls()
    topo.wait("the calls stored", lambda: topo.books(cards)["cdrs"] == len(kept), 60)
    balances = topo.db.run(lambda cur: (cur.execute(
        "SELECT number, balance FROM kondge.card WHERE number = ANY(%s)", (cards,)),
        dict((r["number"], r["balance"]) for r in cur.fetchall()))[1])
    # a moment two seconds after the backup finished (pgBackRest keeps whole seconds)
    moment = topo.one("SELECT greatest(clock_timestamp(), %s::timestamptz + interval '2 s') "
                      "AS t", (json.loads(full.stdout)["finished"],))["t"]
    topo.wait("the moment past", lambda: topo.one(
        "SELECT clock_timestamp() > %s AS past", (moment,))["past"], 10)
    lost = calls()                                    # after the moment
    late = new_card(topo.db, topo.key, str(OPENING))
    topo.wait("the later calls stored",
              lambda: topo.books(cards)["cdrs"] == len(kept) + len(lost), 60)

    refused = topo.kondge("ha", "restore", "--to", moment.isoformat())   # no --yes
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert topo.books(cards)["cdrs"] == len(kept) + len(lost)          # nothing touched

    restored = topo.kondge("ha", "restore", "--to", moment.isoformat(), "--yes", "--json")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    figures = json.loads(restored.stdout)
    assert ha.both_in_sync(topo.t)
    assert {figures["restored_node"], figures["standby"]} == set(ha.NODES)
    b = topo.books(cards)
    assert b["cdrs"] == len(kept)                     # the calls after the moment are gone
    assert b["charges"] == b["debits"] == sum(us_cost(c.billed) for c in kept)
    assert b["mismatched"] == 0
    assert topo.db.run(lambda cur: (cur.execute(
        "SELECT number, balance FROM kondge.card WHERE number = ANY(%s)", (cards,)),
        dict((r["number"], r["balance"]) for r in cur.fetchall()))[1]) == balances
    assert topo.one("SELECT count(*) AS n FROM kondge.card WHERE number = %s",
                    (late,))["n"] == 0
    # the standby is a copy of the restored primary: the same rows there
    standby = psycopg2.connect(host="/var/run/postgresql", port=topo.t.port(figures["standby"]),
                               user="postgres", dbname="kondge")
    try:
        with standby.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery(), (SELECT count(*) FROM kondge.cdr "
                        "WHERE card_number = ANY(%s))", (cards,))
            assert cur.fetchone() == (True, len(kept))
    finally:
        standby.close()
    status = topo.kondge("ha", "status")
    assert status.returncode == 0, status.stdout
    # the service serves calls on the restored database
    more = calls()
    topo.wait("a call on the restored database stored",
              lambda: topo.books(cards)["cdrs"] == len(kept) + len(more), 60)


def test_restore_to_the_end_keeps_everything_and_stores_what_was_spooled_meanwhile(topo):
    card = new_card(topo.db, topo.key, str(OPENING))
    base, stop = call_pairs(card, 95)
    backed = topo.kondge("ha", "backup")
    assert backed.returncode == 0, backed.stdout + backed.stderr
    client = topo.client(timeout=2.0)
    try:
        assert client.access(base + [("Called-Station-Id", "18005550100")]).accepted
        assert client.access(base + [("Called-Station-Id", "15551230000")]).accepted
        primary = ha.primary_name(topo.t)

        def primary_down():
            try:
                ha.answers(topo.t, primary)
            except psycopg2.Error:
                return True
            return False
        restore = subprocess.Popen(KONDGE + ["ha", "restore", "--yes"], env=topo.env, cwd=HOME,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            topo.wait("the primary stopped for the restore", primary_down, 120)
            assert client.accounting(stop) is not None      # answered: spooled
            out, _ = restore.communicate(timeout=600)
        finally:
            if restore.poll() is None:
                restore.kill()
        assert restore.returncode == 0, out
        # the authorisation (committed before the restore) is back; the Stop is stored
        topo.wait("the spooled Stop stored", lambda: topo.one(
            "SELECT count(*) AS n FROM kondge.cdr WHERE card_number = %s", (card,))["n"] == 1,
            60)
        assert client.accounting(stop + [("Acct-Delay-Time", 30)]) is not None  # again
    finally:
        client.close()
    row = topo.one("SELECT count(*) AS n, sum(charge) AS charge FROM kondge.cdr "
                   "WHERE card_number = %s", (card,))
    assert row["n"] == 1 and row["charge"] == us_cost(95)               # once
    assert topo.one("SELECT balance FROM kondge.card WHERE number = %s",
                    (card,))["balance"] == OPENING - us_cost(95)
    assert topo.books([card])["mismatched"] == 0
    assert ha.both_in_sync(topo.t)
