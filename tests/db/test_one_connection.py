"""The hook's database handle: one connection for the process, taken in turns.

rlm_python3 runs one hook at a time in a FreeRADIUS process, so the hook
keeps one connection per process (store/db.py, one_connection). Should
threads ever run at once, they take turns on it: a transaction is never
cut into by another thread's statement."""

import threading

from kondge_billing.store.db import Database


def backend(cur):
    cur.execute("SELECT pg_backend_pid() AS pid")
    return cur.fetchone()["pid"]


def pids_from_threads(db, n=4):
    pids = []
    threads = [threading.Thread(target=lambda: pids.append(db.run(backend))) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return set(pids)


def test_one_connection_serves_every_thread(dsn):
    db = Database(dsn, one_connection=True)
    try:
        assert len(pids_from_threads(db)) == 1
    finally:
        db.close()


def test_by_default_each_thread_has_its_own(dsn):
    db = Database(dsn)
    try:
        assert len(pids_from_threads(db)) == 4
    finally:
        db.close()


def test_threads_take_turns_on_the_one_connection(dsn):
    db = Database(dsn, one_connection=True)
    try:
        db.run(lambda cur: cur.execute("CREATE TABLE turn (n integer)"))
        begun = threading.Event()

        def slow_transaction(cur):
            cur.execute("INSERT INTO turn VALUES (1)")
            begun.set()
            cur.execute("SELECT pg_sleep(0.3)")

        writer = threading.Thread(target=lambda: db.transaction(slow_transaction))
        writer.start()
        assert begun.wait(5)
        # served after the transaction committed, never inside it
        seen = db.run(lambda cur: (cur.execute("SELECT count(*) AS n FROM turn"),
                                   cur.fetchone())[1]["n"])
        writer.join()
        assert seen == 1
        assert db.connection().autocommit       # back to one statement, one commit
    finally:
        db.close()
