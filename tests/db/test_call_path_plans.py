"""The call path reads the call tables by index, however they grow.

A function's statements are planned once per connection and the plans
kept: planned while a table is small, a lookup becomes a scan of the
whole table, and a FreeRADIUS worker keeps its connection for days. So
the call-path functions plan without sequential scans (enable_seqscan =
off): this plays calls through one connection, and counts the sequential
scans of the tables that grow with every call."""

from datetime import datetime, timezone

import psycopg2
import pytest

from kondge_billing.calls.service import Grant, Login
from kondge_billing.edge.request import access_request, accounting_record
from kondge_billing.errors import Refusal
from kondge_billing.operations import demo, stack
from kondge_billing.store import gateways
from kondge_billing.store.pins import pin_hash
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


def test_a_card_is_found_by_one_probe_of_its_number_in_the_plan_kept(dsn, cluster, db, pin_key):
    """The card's look-up in radius_card, with the plan PostgreSQL keeps after
    the fifth call: an index scan of the card's number (not a bitmap scan
    that ORs the number with the caller's bound card: 86 against 54 µs a
    look-up, docs/performance.md)."""
    db.run(lambda cur: demo.load(cur, pin_key))
    log = cluster.pg_data.parent / "postgres.log"
    dbname = dsn.split("dbname=")[1].split()[0]
    conn = psycopg2.connect(stack.superuser_dsn(cluster).replace("dbname=postgres",
                                                                 f"dbname={dbname}"))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("LOAD 'auto_explain'")
            cur.execute("SET auto_explain.log_min_duration = 0")
            cur.execute("SET auto_explain.log_nested_statements = on")
            cur.execute("SELECT id FROM kondge.gateway WHERE name = 'demo-gw'")
            gateway_id = cur.fetchone()[0]
            offset = log.stat().st_size
            for n in range(CALLS // 4):
                cur.execute("SELECT refusal FROM kondge.radius_card(%s, %s, NULL, %s, NULL, %s, "
                            "%s, %s, 'login', now())",
                            ("1000000008", pin_hash(pin_key, "1000000008", "1234"),
                             "18005550100", gateway_id, f"PLAN{n:04X}", f"PLAN{n:04X}"))
                assert cur.fetchone()[0] is None
    finally:
        conn.close()
    text = log.read_bytes()[offset:].decode(errors="replace")
    lookups = [block for block in text.split("LOG:  duration:")
               if "FROM kondge.card c JOIN kondge.category cat" in block.split("CONTEXT:")[0]]
    assert len(lookups) == CALLS // 4
    kept = lookups[-1].split("CONTEXT:")[0]
    assert "Index Scan using card_number_key on card c " in kept, kept
    assert "BitmapOr" not in kept and "Bitmap Heap Scan on card c " not in kept, kept


def planned_in_functions(text: str) -> list[str]:
    """The statements of PL/pgSQL functions that the log says were planned
    (log_planner_stats: one PLANNER STATISTICS entry a planning), each as
    its CONTEXT on one line: the statement's text and the function's line."""
    found = []
    for entry in text.split("LOG:  PLANNER STATISTICS")[1:]:
        entry = entry.split(" LOG:  ")[0]
        if "CONTEXT:" not in entry:
            continue        # a statement sent as it is, planned each time by design
        context = entry.split("CONTEXT:", 1)[1].split("STATEMENT:")[0]
        if "PL/pgSQL function" in context:
            found.append(" ".join(context.split())[:300])
    return found


def other_paths(billing, n):
    """A login refused (a wrong PIN, then the locks it leads to: through the
    second gateway, from a caller of its own), the caller's leg of call n
    told by the number called (its Start without call origin or type: the
    access number its login kept) and a call of a generic gateway."""
    with pytest.raises(Refusal):
        auth(billing, access_request((
            ("User-Name", "1000000008"), ("User-Password", "9999"),
            ("Calling-Station-Id", f"1666{n:07d}"), ("Called-Station-Id", "18005550100"),
            ("Kondge-Gateway-Address", "127.0.0.2"))))
    assert account(billing, accounting_record((
        ("Acct-Status-Type", "Start"), ("Acct-Session-Id", f"in-{n}"),
        ("h323-conf-id", f"h323-conf-id={n:08X} 0F4411D6 AB5591F0 CBF3D765"),
        ("Called-Station-Id", "18005550100"), ("Kondge-Gateway-Address", "127.0.0.1")),
        datetime.now(timezone.utc))).outcome == "recorded"
    for status in ("Start", "Stop"):
        assert account(billing, accounting_record((
            ("Acct-Status-Type", status), ("Acct-Session-Id", f"generic-{n}"),
            ("Acct-Session-Time", "61"), ("User-Name", "1000000008"),
            ("Called-Station-Id", "15551230000"), ("Kondge-Gateway-Address", "127.0.0.3")),
            datetime.now(timezone.utc))).outcome in ("recorded", "charged")


def test_past_the_first_calls_the_call_path_plans_nothing_anew(dsn, cluster, db, billing,
                                                                pin_key):
    """A statement a function runs is planned for its first five runs on a
    connection, and its generic plan is kept from then on, unless the plan
    made for each call's values looks cheaper every time. A condition that
    puts a value the planner can fold beside a query (`v_hold.id IS NOT NULL
    OR NOT EXISTS (...)`) is such a one: planned anew at every call
    (docs/performance.md), as is a SQL function's body. With the
    planner's statistics logged for this database, the call path's
    connection plans no statement of the call-path functions again once
    each has run a few times: complete calls, refused logins and a generic
    gateway's records."""
    def setup(cur):
        demo.load(cur, pin_key)
        gateways.add(cur, "quintum-1", "127.0.0.2", "q-secret", "quintum")
        gateways.add(cur, "generic-1", "127.0.0.3", "g-secret", "generic")
    db.run(setup)
    name = dsn.split("dbname=")[1].split()[0]
    conn = psycopg2.connect(stack.superuser_dsn(cluster))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f"ALTER DATABASE {name} SET log_planner_stats = on")
    finally:
        conn.close()
    db.drop()                           # the next connection has it
    for n in range(10):                 # each statement run more than five times
        call(billing, n)
        other_paths(billing, n)
    log = cluster.pg_data.parent / "postgres.log"
    offset = log.stat().st_size
    for n in range(10, 20):
        call(billing, n)
        other_paths(billing, n)
    # a statement sent as it is, planned (and logged) last: the log is read up to it
    db.run(lambda cur: cur.execute("SELECT 'planned last'"))
    wait_for("the planning of the last statement in the log",
             lambda: "SELECT 'planned last'" in log.read_bytes()[offset:].decode(
                 errors="replace"), timeout=15)
    text = log.read_bytes()[offset:].decode(errors="replace")
    assert planned_in_functions(text) == []
