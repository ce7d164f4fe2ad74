"""A dead or hung database is noticed fast, and a closed connection replaced."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

from kondge_billing.db import Database


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
        from kondge_billing.db import Database
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
        # the next statement, once the pause after a failure is over, gets a new connection
        time.sleep(1.1)
        print("new" if db.run(lambda cur: (cur.execute("SELECT pg_backend_pid() AS p"),
                                           cur.fetchone())[1])["p"] != pid else "same")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                                os.path.abspath(__file__)))))
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first.startswith("gave up after 0.")
    assert float(first.split()[3]) < 1.5
    assert second == "new"
