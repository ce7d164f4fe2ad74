"""A dead or hung database is noticed fast, and a closed connection replaced."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from kondge_billing.store.db import Database


def backend_pid(db):
    return db.run(lambda cur: (cur.execute("SELECT pg_backend_pid() AS pid"), cur.fetchone())[1])["pid"]


def test_a_connection_the_server_closed_is_replaced_and_the_statement_done(dsn):
    db, admin = Database(dsn), Database(dsn)
    try:
        old = backend_pid(db)
        # what a crash or `pg_ctl stop -m immediate` does to the connections
        admin.run(lambda cur: cur.execute("SELECT pg_terminate_backend(%s)", (old,)))
        time.sleep(0.2)
        new = backend_pid(db)
        assert new != old
    finally:
        db.close()
        admin.close()


def test_a_statement_error_is_not_taken_for_a_dead_database(dsn):
    import psycopg2
    db = Database(dsn)
    try:
        pid = backend_pid(db)
        with pytest.raises(psycopg2.errors.DivisionByZero):
            db.run(lambda cur: cur.execute("SELECT 1 / 0"))
        assert backend_pid(db) == pid               # the same connection, still good
    finally:
        db.close()


def test_a_hung_database_is_given_up_after_the_deadline(dsn):
    """The server's statement timeout cannot fire when the server does not run:
    the client's own deadline does. Run apart: the deadline's wait callback is
    for the whole process (and rules out COPY there)."""
    script = textwrap.dedent(f"""
        import os, signal, time
        from kondge_billing.store.db import Database
        from kondge_billing.errors import Unavailable
        db = Database({dsn!r}, deadline_ms=500)
        pid = db.run(lambda cur: (cur.execute("SELECT pg_backend_pid() AS p"),
                                  cur.fetchone())[1])["p"]
        os.kill(pid, signal.SIGSTOP)
        try:
            t = time.monotonic()
            try:
                db.run(lambda cur: cur.execute("SELECT 1"))
                print("answered")
            except Unavailable as exc:
                print("gave up after %.2f s: %s" % (time.monotonic() - t, exc))
        finally:
            os.kill(pid, signal.SIGCONT)
        # once the database answers the probe again, statements get a new connection
        back = time.monotonic()
        while True:
            try:
                now = db.run(lambda cur: (cur.execute("SELECT pg_backend_pid() AS p"),
                                          cur.fetchone())[1])["p"]
                break
            except Unavailable:
                if time.monotonic() - back > 5:
                    raise
                time.sleep(0.05)
        print("new" if now != pid else "same")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                                os.path.abspath(__file__)))))
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first.startswith("gave up after 0.")
    assert float(first.split()[3]) < 1.5
    assert second == "new"


def test_a_hung_database_costs_one_deadline_not_one_per_request(cluster, dsn):
    """Once a statement has been given up, every statement on every thread fails
    at once, whatever connection it holds, until a probe that is never waited
    on for long sees the database answer; statements are served soon after."""
    postmaster = int((cluster.pg_data / "postmaster.pid").read_text().split()[0])
    script = textwrap.dedent(f"""
        import os, signal, subprocess, time
        from concurrent.futures import ThreadPoolExecutor
        from kondge_billing.store.db import Database
        from kondge_billing.errors import Unavailable
        db = Database({dsn!r}, deadline_ms=500)
        def one():
            t = time.monotonic()
            try:
                db.run(lambda cur: cur.execute("SELECT 1"))
                return "served", time.monotonic() - t
            except Unavailable:
                return "refused", time.monotonic() - t
        pool = ThreadPoolExecutor(4)                    # threads that keep their connections
        assert [f.result()[0] for f in [pool.submit(one) for _ in range(40)]] == ["served"] * 40
        # the cluster's postmaster and all its processes, ours included
        pids = [{postmaster}] + [int(p) for p in subprocess.run(
            ["pgrep", "-P", "{postmaster}"], capture_output=True, text=True).stdout.split()]
        for pid in pids: os.kill(pid, signal.SIGSTOP)
        try:
            results, began = [], time.monotonic()
            while time.monotonic() - began < 3.0:      # 3 s hung, requests all along
                results += [f.result() for f in [pool.submit(one) for _ in range(4)]]
                time.sleep(0.01)
        finally:
            for pid in pids: os.kill(pid, signal.SIGCONT)
        back = time.monotonic()
        while one()[0] != "served":
            assert time.monotonic() - back < 5
            time.sleep(0.01)
        waited = sorted(w for _, w in results)
        print("answered-while-hung", sum(1 for r, _ in results if r == "served"), len(results))
        print("blocked %.3f" % sum(waited))
        print("longest-after-first %.3f" % waited[-2])
        print("served-after %.3f" % (time.monotonic() - back))
    """)
    try:
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                timeout=60, cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                                    os.path.abspath(__file__)))))
    finally:
        for pid in [postmaster] + [int(p) for p in subprocess.run(
                ["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()]:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass            # a backend that ended since pgrep listed it
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    answered, asked = map(int, lines["answered-while-hung"].split())
    assert answered == 0 and asked > 50
    # one deadline (0.5 s, on up to four threads at once) and short probes (one
    # wait of PROBE_WAIT every PROBE_EVERY at most, over the 3 s), not a
    # deadline a request (that would be 0.5 s for each of the 50 and more
    # asked); with room for a busy machine's scheduling (2.65 s is the sum
    # by the rules alone, and a run on a loaded machine took 2.505)
    by_rules = 4 * 0.5 + (3.0 / Database.PROBE_EVERY + 1) * Database.PROBE_WAIT
    assert float(lines["blocked"]) < by_rules + 0.75 < 0.5 * 50 / 4
    assert float(lines["longest-after-first"]) < 0.9    # one deadline, never two on end
    assert float(lines["served-after"]) < 2.0       # served soon after it answers again


def test_the_database_is_said_to_warm_up_after_it_came_back(dsn):
    """Overload control leaves alone the first seconds of a process, and those
    after the database came back (new backends, their first statements slow)."""
    db, admin = Database(dsn), Database(dsn)
    try:
        assert db.settling()                       # just begun
        db.back_at -= db.SETTLE
        assert not db.settling()
        backend_pid(db)
        assert not db.settling()                   # an answer is no coming back
        admin.run(lambda cur: cur.execute("SELECT pg_terminate_backend(%s)", (backend_pid(db),)))
        time.sleep(0.2)
        backend_pid(db)                            # the broken connection replaced
        assert db.settling()
    finally:
        db.close()
        admin.close()
