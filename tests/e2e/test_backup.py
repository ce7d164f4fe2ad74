"""Backups through pgBackRest on a service of its own: a full and a
differential backup, the restore drill, a point-in-time restore checked
against the call records before and after the chosen moment, and
accounting spooled while the database is down stored after a restore.

Its own KONDGE_VAR (and so its own cluster, reached through a socket
folder of its own, and its own backup repository), so that going back in
time takes nothing from the other tests.
"""

import json
import time

import pytest

from tests.conftest import TEST_VAR, free_udp_port
from tests.support.cards import new_card
from tests.support.load import conf_id, run_load
from tests.support.own_stack import OwnStack, started
from tests.support.radius import RadiusClient
from tests.support.waiting import wait_for

OPENING = "100.00"


class OwnService(OwnStack):
    def client(self, timeout=1.0):
        return RadiusClient(self.settings.auth_port, self.settings.acct_port, "testing123",
                            timeout=timeout)

    def calls(self, cards, per_card=2):
        result = run_load(lambda: self.client(), cards, "1234", per_card, "15551230000",
                          (1, 300), limit=90)
        assert not result.errors, result.errors[:3]
        return result

    def cdrs(self, cards):
        return self.one("SELECT count(*) AS n FROM kondge.cdr WHERE card_number = ANY(%s)",
                        (cards,))["n"]

    def books(self):
        return self.one(
            """SELECT (SELECT coalesce(sum(charge), 0) FROM kondge.cdr) AS charges,
                      (SELECT coalesce(-sum(amount), 0) FROM kondge.ledger_entry
                        WHERE kind = 'call') AS debits,
                      (SELECT count(*) FROM kondge.v_balance_mismatch) AS mismatched""")

    def wait_cdrs(self, cards, count, timeout=60):
        wait_for(f"{count} CDRs stored", lambda: self.cdrs(cards) >= count, timeout,
                 ignore=Exception)              # the database is being restored


@pytest.fixture(scope="module")
def own(test_env):
    var = TEST_VAR / "bk"
    env = dict(test_env, KONDGE_VAR=str(var), KONDGE_AUTH_PORT=str(free_udp_port()),
               KONDGE_ACCT_PORT=str(free_udp_port()), KONDGE_WORKERS="2")
    yield from started(OwnService(env), ("server", "start"), ("server", "stop"))


def assert_balanced(service):
    b = service.books()
    assert b["charges"] == b["debits"]
    assert b["mismatched"] == 0


def test_restore_without_yes_refuses_and_changes_nothing(own):
    card = new_card(own.db, own.key, OPENING)
    result = own.kondge("restore")
    assert result.returncode == 1
    assert "--yes" in result.stderr
    assert own.one("SELECT count(*) AS n FROM kondge.card WHERE number = %s",
                   (card,))["n"] == 1


def test_backup_drill_and_point_in_time_restore(own):
    cards = [new_card(own.db, own.key, OPENING) for _ in range(3)]
    before = own.calls(cards)
    full = own.kondge("backup", "--full", "--json")
    assert full.returncode == 0, full.stderr
    assert json.loads(full.stdout)["type"] == "full"

    finished = json.loads(full.stdout)["finished"]
    kept = own.calls(cards)
    made_by_then = len(before.made) + len(kept.made)
    own.wait_cdrs(cards, made_by_then)
    balances_then = own.db.run(lambda cur: (cur.execute(
        "SELECT number, balance FROM kondge.card WHERE number = ANY(%s)", (cards,)),
        dict((r["number"], r["balance"]) for r in cur.fetchall()))[1])
    # a moment at least two seconds after the full backup finished
    # (pgBackRest records whole seconds): the calls above usually take longer
    moment = own.one("SELECT greatest(clock_timestamp(), %s::timestamptz + interval '2 s') "
                     "AS t", (finished,))["t"]
    while own.one("SELECT clock_timestamp() > %s AS past", (moment,))["past"] is False:
        time.sleep(0.1)
    diff = own.kondge("backup", "--diff", "--json")
    assert diff.returncode == 0, diff.stderr
    assert json.loads(diff.stdout)["type"] == "diff"

    lost = own.calls(cards)          # after the moment: gone after the restore
    assert lost.made
    own.wait_cdrs(cards, made_by_then + len(lost.made))

    listed = json.loads(own.kondge("backup", "list", "--json").stdout)
    assert [b["type"] for b in listed][-2:] == ["full", "diff"]

    drill = own.kondge("backup", "drill", "--json")
    assert drill.returncode == 0, drill.stdout + drill.stderr
    figures = json.loads(drill.stdout)
    assert figures["balanced"] is True
    assert figures["cdrs"] == own.one("SELECT count(*) AS n FROM kondge.cdr")["n"]
    assert not (own.settings.var / "drill").exists()        # removed afterwards

    restored = own.kondge("restore", "--to", moment.isoformat(), "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert own.cdrs(cards) == made_by_then
    after = own.db.run(lambda cur: (cur.execute(
        "SELECT number, balance FROM kondge.card WHERE number = ANY(%s)", (cards,)),
        dict((r["number"], r["balance"]) for r in cur.fetchall()))[1])
    assert after == balances_then
    assert_balanced(own)
    # the service serves calls on the restored database
    own.calls(cards[:1], per_card=1)
    own.wait_cdrs(cards, made_by_then + 1)


def test_accounting_spooled_while_down_is_stored_after_a_restore(own):
    backed = own.kondge("backup", "--diff")
    assert backed.returncode == 0, backed.stderr
    card = new_card(own.db, own.key, OPENING)
    client = own.client(timeout=2.0)
    conf = conf_id()
    base = [("User-Name", card), ("User-Password", "1234"),
            ("Calling-Station-Id", "15550001111"), ("h323-conf-id", conf)]
    try:
        assert client.access(base + [("Called-Station-Id", "18005550100")], tries=3).accepted
        assert client.access(base + [("Called-Station-Id", "15551230000")], tries=3).accepted
        stopped = own.kondge("server", "db-stop")
        assert stopped.returncode == 0, stopped.stderr
        stop = [("Acct-Status-Type", "Stop"), ("Acct-Session-Id", conf[-8:]),
                ("User-Name", card), ("Calling-Station-Id", "15550001111"),
                ("Called-Station-Id", "15551230000"), ("h323-conf-id", conf),
                ("h323-call-origin", "h323-call-origin=originate"),
                ("Acct-Session-Time", 125)]
        assert client.accounting(stop, tries=3) is not None       # answered: spooled
    finally:
        client.close()
    spooled = json.loads(own.kondge("accounting", "spool", "--json").stdout)
    assert spooled["spooled"] == 1

    restored = own.kondge("restore", "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    own.wait_cdrs([card], 1)
    wait_for("the spool drained", lambda: not json.loads(
        own.kondge("accounting", "spool", "--json").stdout)["spooled"], 30)
    row = own.one("SELECT count(*) AS n, sum(charge) AS charge FROM kondge.cdr "
                  "WHERE card_number = %s", (card,))
    assert row["n"] == 1
    assert row["charge"] > 0
    assert_balanced(own)
