"""Faults around the database and the spool, through the real server: nothing
answered is ever lost, what cannot be kept is not answered, and the
operator can see and prove it (kondge accounting ...)."""

import json
import os
import signal
import subprocess
import time
from decimal import Decimal

import psycopg2
import pytest

from kondge_billing.operations import stack
from tests.e2e.conftest import balance
from tests.e2e.test_billing_rules import MOBILE, Call
from tests.support.disk import FullDisks
from tests.support.waiting import poll


def cdr_count(service, number):
    return service.db.run(lambda cur: (cur.execute(
        "SELECT count(*) AS n FROM kondge.cdr WHERE card_number = %s", (number,)),
        cur.fetchone())[1])["n"]


def wait_until(predicate, timeout=60.0, step=0.25):
    """Whether predicate() came true within `timeout` seconds."""
    return poll(predicate, timeout, step) is not None


def database_answers(s):
    try:
        psycopg2.connect(s.dsn, connect_timeout=1).close()
        return True
    except psycopg2.OperationalError:
        return False


def worker_run_dirs(s):
    return [d.parent for d in stack.spool_dirs(s) if d.parent.exists()]


def logs_since(s, offsets):
    out = ""
    for path, offset in offsets.items():
        with open(path, "rb") as f:
            f.seek(offset)
            out += f.read().decode(errors="replace")
    return out


def log_offsets(s):
    return {p: p.stat().st_size for p in s.log_dir.glob("radius*.log")}


@pytest.fixture
def database_down(stack_ready):
    """Stop the database for the test; it is started again whatever happens."""
    s = stack_ready.settings
    stack.db_stop(s)
    yield s
    stack.db_start(s)
    assert wait_until(lambda: database_answers(s))


def test_a_full_spool_disk_means_no_answer_and_nothing_lost(stack_ready, card, database_down):
    s = database_down
    client = stack_ready.client(timeout=2.0)
    with FullDisks() as full:
        for run_dir in worker_run_dirs(s):
            full.fill(run_dir / "spool")
        assert full.mounted
        offsets = log_offsets(s)
        call = Call(client, card)
        stop = [("Acct-Status-Type", "Stop"), ("Acct-Session-Id", "fullspool1"),
                ("User-Name", card), ("Called-Station-Id", MOBILE),
                ("h323-conf-id", call.conf), ("h323-call-origin", "h323-call-origin=originate"),
                ("Acct-Session-Time", 60)]
        assert client.accounting(stop) is None                  # kept nowhere: no answer
        assert "ACCOUNTING NOT ANSWERED" in logs_since(s, offsets)
        status = stack_ready.kondge("server", "status")
        assert status.returncode == 3 and "could not keep a record" in status.stdout
    # the gateway sends it again once there is room: answered, and stored
    try:
        assert client.accounting(stop) is not None              # spooled now
        stack.db_start(s)
        assert wait_until(lambda: cdr_count(stack_ready, card) == 1)
    finally:
        client.close()
    spool = stack_ready.kondge("accounting", "spool")
    assert spool.returncode == 0 and "waiting: 0" in spool.stdout


def test_records_answered_during_an_outage_are_stored_and_proved(stack_ready, card):
    s = stack_ready.settings
    client = stack_ready.client(timeout=3.0)
    call = Call(client, card)
    try:
        assert call.access(MOBILE, tries=3).accepted             # a gateway retries
        stack.db_stop(s)
        try:
            t = time.monotonic()
            call.acct("Start")
            call.acct("Stop", seconds=125)
            assert time.monotonic() - t < 2.0                   # the spool answers at once
        finally:
            stack.db_start(s)
        assert wait_until(lambda: cdr_count(stack_ready, card) == 1)
        assert balance(stack_ready, card) == Decimal("9.6850")
    finally:
        client.close()
    check = stack_ready.kondge("--json", "accounting", "check")
    report = json.loads(check.stdout)
    assert check.returncode == 0 and report["missing"] == [] and report["stored"] >= 2
    # a stored leg that vanished is found missing
    conf = call.conf.split("=", 1)[1]
    stack_ready.db.run(lambda cur: cur.execute(
        "DELETE FROM kondge.call_leg WHERE call_id = %s AND leg = 'originate'", (conf,)))
    check = stack_ready.kondge("--json", "accounting", "check")
    assert check.returncode == 1
    assert {m["status"] for m in json.loads(check.stdout)["missing"]} == {"start", "stop"}
    stack_ready.db.run(lambda cur: cur.execute(
        """INSERT INTO kondge.call_leg (gateway_id, call_id, call_key, leg, acct_session_id,
                                        start_received_at, stop_received_at)
           SELECT gateway_id, call_id, call_key, 'originate', %s, now(), now()
             FROM kondge.cdr WHERE call_id = %s""", (call.sessions["originate"], conf)))


def test_a_hung_database_sends_accounting_to_the_spool_within_seconds(stack_ready, card):
    s = stack_ready.settings
    client = stack_ready.client(timeout=6.0)
    call = Call(client, card)
    # this cluster's postmaster and its processes, nobody else's
    postmaster = int((s.pg_data / "postmaster.pid").read_text().split()[0])
    pids = [postmaster] + [int(p) for p in subprocess.run(
        ["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()]
    assert call.access(MOBILE, tries=3).accepted             # a gateway retries
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        t = time.monotonic()
        call.acct("Stop", seconds=125)
        answered_after = time.monotonic() - t
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        client.close()
    assert answered_after < 5.0
    assert wait_until(lambda: cdr_count(stack_ready, card) == 1)


def test_an_immediate_stop_of_postgresql_loses_nothing_and_parks_nothing(stack_ready, card):
    s = stack_ready.settings
    client = stack_ready.client(timeout=3.0)
    call = Call(client, card)
    parked_before = stack_ready.db.run(lambda cur: (cur.execute(
        "SELECT count(*) AS n FROM kondge.unprocessed_record"), cur.fetchone())[1])["n"]
    try:
        assert call.access(MOBILE, tries=3).accepted                   # connections are open
        call.acct("Start")
        # -W: no waiting, the supervisor starts it again at once
        subprocess.run(["runuser", "-u", "postgres", "--", str(stack.pg_bin(s) / "pg_ctl"),
                        "-D", str(s.pg_data), "-m", "immediate", "-W", "stop"], check=True,
                       capture_output=True)
        assert wait_until(lambda: database_answers(s), timeout=60)    # the supervisor
        reply = client.accounting([
            ("Acct-Status-Type", "Stop"), ("Acct-Session-Id", call.sessions["originate"]),
            ("User-Name", card), ("Called-Station-Id", MOBILE), ("h323-conf-id", call.conf),
            ("h323-call-origin", "h323-call-origin=originate"), ("Acct-Session-Time", 125)],
            tries=3)
        assert reply is not None
        assert wait_until(lambda: cdr_count(stack_ready, card) == 1)
        assert call.access(MOBILE, tries=3).accepted             # stage 2 again: served
    finally:
        client.close()
    parked_after = stack_ready.db.run(lambda cur: (cur.execute(
        "SELECT count(*) AS n FROM kondge.unprocessed_record"), cur.fetchone())[1])["n"]
    assert parked_after == parked_before


def test_a_record_freeradius_cannot_hand_to_the_hook_is_kept_stored_and_blocks_nothing(
        stack_ready, card):
    s = stack_ready.settings
    client = stack_ready.client(timeout=3.0)
    call = Call(client, card)
    try:
        assert call.access(MOBILE, tries=3).accepted             # a gateway retries
        call.acct("Start")
        # a byte that is not UTF-8 in a string attribute
        reply = client.accounting([
            ("Acct-Status-Type", "Stop"), ("Acct-Session-Id", call.sessions["originate"]),
            ("User-Name", card), ("Called-Station-Id", MOBILE), ("h323-conf-id", call.conf),
            ("h323-call-origin", "h323-call-origin=originate"), ("Acct-Session-Time", 125),
            ("Cisco-AVPair", b"h323-ivr-out=\xff\xfeoops")])
        assert reply is not None                                 # kept, and answered
        other = Call(client, card)
        # the next call is not held up behind it
        assert wait_until(lambda: cdr_count(stack_ready, card) == 1, timeout=30)
        assert other.access(MOBILE, tries=3).accepted
        other.talk(seconds=60)
        assert wait_until(lambda: cdr_count(stack_ready, card) == 2, timeout=30)
    finally:
        client.close()
    flags = stack_ready.db.run(lambda cur: (cur.execute(
        "SELECT flags FROM kondge.cdr WHERE card_number = %s ORDER BY id", (card,)),
        cur.fetchall())[1])
    assert "bytes-escaped" in flags[0]["flags"]
    assert balance(stack_ready, card) == Decimal("10.00") - Decimal("0.3150") - Decimal("0.15")
    kept = [p for d in worker_run_dirs(s) for p in (d / "quarantine").glob("*.replayed")]
    assert any(b"\xff\xfe" in p.read_bytes() or b"\\377\\376" in p.read_bytes() for p in kept)


def test_parked_records_are_listed_shown_and_replayed(stack_ready, card):
    """A record the call path could not process is kept whole; once mended, an
    operator stores it with `kondge accounting replay`, once."""
    client = stack_ready.client(timeout=3.0)
    call = Call(client, card)
    try:
        assert call.access(MOBILE, tries=3).accepted
    finally:
        client.close()
    pairs = [["Acct-Status-Type", "Stop"], ["Acct-Session-Id", call.sessions["originate"]],
             ["User-Name", card], ["Called-Station-Id", MOBILE],
             ["h323-conf-id", call.conf], ["h323-call-origin", "h323-call-origin=originate"],
             ["Acct-Session-Time", "125"], ["Kondge-Gateway-Address", "127.0.0.1"]]
    unknown = [["Acct-Status-Type", "Stop"], ["Acct-Session-Id", "x"],
               ["Kondge-Gateway-Address", "10.99.99.99"]]
    ids = stack_ready.db.run(lambda cur: (cur.execute(
        """INSERT INTO kondge.unprocessed_record (pairs, error)
           VALUES (%s, 'a bug met an odd packet'), (%s, 'no such gateway') RETURNING id""",
        (json.dumps(pairs), json.dumps(unknown))), [r["id"] for r in cur.fetchall()])[1])
    listed = stack_ready.kondge("--json", "accounting", "parked")
    assert {r["id"] for r in json.loads(listed.stdout)} >= set(ids)
    shown = stack_ready.kondge("accounting", "show", str(ids[0]))
    assert shown.returncode == 0 and card in shown.stdout and "odd packet" in shown.stdout
    replay = stack_ready.kondge("--json", "accounting", "replay", "--id", str(ids[0]))
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert cdr_count(stack_ready, card) == 1
    assert balance(stack_ready, card) == Decimal("9.6850")
    again = stack_ready.kondge("accounting", "replay", "--id", str(ids[0]))
    assert again.returncode == 1 and "replayed already" in again.stderr
    # one that still cannot be processed stays parked, and says why
    failed = stack_ready.kondge("--json", "accounting", "replay", "--id", str(ids[1]))
    assert failed.returncode == 1
    assert "10.99.99.99" in json.loads(failed.stdout)["failed"][0]["error"]
    waiting = json.loads(stack_ready.kondge("--json", "accounting", "parked").stdout)
    assert ids[1] in {r["id"] for r in waiting} and ids[0] not in {r["id"] for r in waiting}


def test_with_reject_the_whole_outage_gets_code_8_even_in_workers_started_during_it(
        stack_ready, service_var):
    """KONDGE_AUTH_WHEN_DB_DOWN=reject: code 8 from the first second of an
    outage to its last, also from workers started while it lasts (the gateway
    list comes from the supervisor's file, not from the database)."""
    from kondge_billing import config
    from kondge_billing.store import gateways
    from tests.e2e.conftest import env_beside
    from tests.e2e.test_radius import access
    from tests.support.radius import RadiusClient
    s = config.load(env_beside(stack_ready, service_var, KONDGE_AUTH_WHEN_DB_DOWN="reject"))
    stack.render_clients(s, stack_ready.db.run(gateways.all_gateways))
    stack.db_stop(stack_ready.settings)
    radius = stack.RadiusSet(s)
    try:
        radius.start()                             # its workers start with the database down
        client = RadiusClient(s.auth_port, s.acct_port, "testing123", timeout=2.0)
        try:
            codes = []
            deadline = time.monotonic() + 14
            while time.monotonic() < deadline:
                reply = access(client, "1000000008", "1234")
                codes.append(reply and reply.h323("h323-return-code"))
                time.sleep(1.0)
            assert len(codes) >= 10 and set(codes) == {"8"}, codes
        finally:
            client.close()
    finally:
        stack.db_start(stack_ready.settings)
        radius.stop()
    assert wait_until(lambda: database_answers(stack_ready.settings))


def test_a_dead_supervisor_is_replaced_and_only_what_is_missing_is_started(stack_ready):
    """kill -9 of the supervisor, then of a worker: `kondge server start` takes
    over the parts that still serve and starts only the dead worker; the
    gateways are answered all along (retrying as a gateway does)."""
    import threading
    s = stack_ready.settings
    before = stack.radius_pids(s)
    assert set(before) >= {"freeradius", "worker-1", "worker-2"}
    os.kill(stack.supervisor_pid(s), signal.SIGKILL)
    assert wait_until(lambda: stack.supervisor_pid(s) is None, timeout=10)
    os.kill(before["worker-2"], signal.SIGKILL)
    unanswered, asked, stop = [], [], threading.Event()

    def keep_asking():
        # as a gateway retries, at Cisco's defaults: 3 tries 5 s apart. A
        # request the front end gave the dead worker is given to another
        # once that worker is found unresponsive (response_window, 5 s), or
        # reaches its successor on the same ports: either way the gateway's
        # next try is answered. (Tries 2 s apart would time the restart of
        # the worker, by a new supervisor on a busy machine, against 4 s.)
        client = stack_ready.client(timeout=5.0)
        try:
            while not stop.is_set():
                reply = client.access([("User-Name", "1000000008"), ("User-Password", "1234"),
                                       ("Called-Station-Id", "18005550100")], tries=3)
                asked.append(reply)
                if reply is None:
                    unanswered.append(time.monotonic())
                time.sleep(0.1)
        finally:
            client.close()

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        started = stack_ready.kondge("server", "start")
        assert started.returncode == 0, started.stdout + started.stderr
        assert "was running" in started.stdout
        # a few more asks after the takeover: each may take a retry (5 s)
        # when it was given to the dead worker, so count them, not seconds
        after_start = len(asked)
        wait_until(lambda: len(asked) >= after_start + 4, timeout=60)
    finally:
        stop.set()
        asker.join(30)
    after = stack.radius_pids(s)
    assert after["freeradius"] == before["freeradius"]              # never restarted
    assert all(after[n] == before[n] for n in before if n not in ("worker-2",))
    assert after["worker-2"] != before["worker-2"]                  # started again
    assert len(asked) >= after_start + 4 and unanswered == []
    status = stack_ready.kondge("server", "status")
    assert status.returncode == 0, status.stdout
