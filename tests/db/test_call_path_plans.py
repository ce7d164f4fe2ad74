"""The call path reads the call tables by index, however they grow.

A function's statements are planned once per connection and the plans
kept: planned while a table is small, a lookup becomes a scan of the
whole table, and a FreeRADIUS worker keeps its connection for days. So
the call-path functions plan without sequential scans (enable_seqscan =
off): this plays calls through one connection, and counts the sequential
scans of the tables that grow with every call."""

from datetime import datetime, timezone

import pytest

from kondge_billing.calls.service import Grant, Login
from kondge_billing.edge.request import access_request, accounting_record
from kondge_billing.operations import demo
from tests.support.waiting import wait_for

# grow with every call (or every card, caller and hold)
GROWING = ("call_leg", "call_login", "cdr", "reservation", "ledger_entry", "card", "caller")


def call(billing, n):
    conf = f"h323-conf-id={n:08X} 0F4411D6 AB5591F0 CBF3D765"
    base = {"User-Name": "1000000008", "User-Password": "1234",
            "Calling-Station-Id": "15551234567", "h323-conf-id": conf,
            "Kondge-Gateway-Address": "127.0.0.1"}
    gateway = billing.gateways.get("127.0.0.1")
    for called, kind in (("18005550100", Login), ("447911123456", Grant)):
        req = access_request(tuple({**base, "Called-Station-Id": called}.items()))
        assert isinstance(billing.authorize(gateway, req), kind)
    for status, origin, called in (("Start", "answer", "18005550100"),
                                   ("Start", "originate", "447911123456"),
                                   ("Stop", "originate", "447911123456"),
                                   ("Stop", "answer", "18005550100")):
        pairs = {**base, "Acct-Status-Type": status, "Acct-Session-Id": f"S{n}",
                 "Called-Station-Id": called,
                 "h323-call-origin": f"h323-call-origin={origin}"}
        del pairs["User-Password"]
        if status == "Stop":
            pairs["Acct-Session-Time"] = "10"
        rec = accounting_record(tuple(pairs.items()), datetime.now(timezone.utc))
        assert billing.account(gateway, rec).outcome in ("recorded", "charged")


def scans(db):
    """{table: (sequential scans, rows inserted)} as the statistics have them."""
    def read(cur):
        cur.execute("SELECT relname, seq_scan, n_tup_ins FROM pg_stat_user_tables "
                    "WHERE schemaname = 'kondge' AND relname = ANY (%s)", (list(GROWING),))
        return {r["relname"]: (r["seq_scan"], r["n_tup_ins"]) for r in cur.fetchall()}
    return db.run(read)


@pytest.mark.parametrize("calls", [40])
def test_the_call_path_never_scans_a_growing_table(db, billing, pin_key, calls):
    db.run(lambda cur: demo.load(cur, pin_key))
    before = scans(db)
    for n in range(calls):          # past the fifth run, when plans are kept for good
        call(billing, n)
    billing.db.run(lambda cur: cur.execute("SELECT pg_stat_force_next_flush()"))
    billing.db.run(lambda cur: cur.execute("SELECT 1"))
    wait_for("the statistics of the calls played",
             lambda: scans(db)["cdr"][1] - before["cdr"][1] >= calls, timeout=15)
    after = scans(db)
    scanned = {t: after[t][0] - before[t][0] for t in GROWING}
    assert scanned == dict.fromkeys(GROWING, 0)
