"""The call path reads the call tables by index, however they grow.

A function's statements are planned once per connection and the plans
kept: planned while a table is small, a lookup becomes a scan of the
whole table, and a FreeRADIUS worker keeps its connection for days. So
the call-path functions plan without sequential scans (enable_seqscan =
off): this plays calls through one connection, and counts the sequential
scans of the tables that grow with every call."""

from kondge_billing.calls.service import Grant, Login
from kondge_billing.operations import demo
from tests.db.test_call_path import account, acct, auth, login
from tests.support.waiting import wait_for

# grow with every call (or every card, caller and hold)
GROWING = ("call_leg", "call_login", "cdr", "reservation", "ledger_entry", "card", "caller")
CALLS = 40          # past the fifth run of each statement, when plans are kept for good


def call(billing, n):
    """Call n of card 1000000008 to the UK, complete: stage 1, stage 2, both legs."""
    conf = f"h323-conf-id={n:08X} 0F4411D6 AB5591F0 CBF3D765"
    assert isinstance(auth(billing, login("1000000008", "1234", conf=conf)), Login)
    assert isinstance(auth(billing, login("1000000008", "1234", "447911123456", conf=conf)),
                      Grant)
    for rec in (acct("Start", "answer", conf=conf), acct("Start", "originate", conf=conf),
                acct("Stop", "originate", 10, conf=conf), acct("Stop", "answer", 10, conf=conf)):
        assert account(billing, rec).outcome in ("recorded", "charged")


def scans(db):
    """{table: (sequential scans, rows inserted)} as the statistics have them."""
    def read(cur):
        cur.execute("SELECT relname, seq_scan, n_tup_ins FROM pg_stat_user_tables "
                    "WHERE schemaname = 'kondge' AND relname = ANY (%s)", (list(GROWING),))
        return {r["relname"]: (r["seq_scan"], r["n_tup_ins"]) for r in cur.fetchall()}
    return db.run(read)


def test_the_call_path_never_scans_a_growing_table(db, billing, pin_key):
    db.run(lambda cur: demo.load(cur, pin_key))
    before = scans(db)
    for n in range(CALLS):
        call(billing, n)
    db.run(lambda cur: cur.execute("SELECT pg_stat_force_next_flush()"))
    wait_for("the statistics of the calls played",
             lambda: scans(db)["cdr"][1] - before["cdr"][1] >= CALLS, timeout=15)
    after = scans(db)
    scanned = {t: after[t][0] - before[t][0] for t in GROWING}
    assert scanned == dict.fromkeys(GROWING, 0)
