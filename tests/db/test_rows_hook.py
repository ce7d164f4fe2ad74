"""bench/rows_hook.py and bench/priced_hook.py, the hooks of bench/floor.py's
"rows" and "priced" workers, given a call's packets as rlm_python3 hands
them over (with a stand-in `radiusd`) on a real database: they write the
rows the service writes for a call, their call keys marked as the bench's;
the priced kind grants and charges what the service does; a repeated
packet or a packet from no known gateway moves no money."""

import importlib
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from bench import call_rows
from kondge_billing.operations import demo
from tests.db.test_bench_rows import CARD, TABLES, counts
from tests.db.test_call_path_plans import call as service_call

BENCH = Path(__file__).resolve().parents[2] / "bench"
CONF = "R0000001 0F4411D6 AB5591F0 CBF3D765"
ACCESS, DEST, CALLER = "18005550100", "447911123456", "15550001111"


@pytest.fixture
def hook(db, dsn, pin_key, monkeypatch):
    db.run(lambda cur: demo.load(cur, pin_key))
    radiusd = call_rows.stand_in_radiusd()
    monkeypatch.setitem(sys.modules, "radiusd", radiusd)
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setenv("KONDGE_FLOOR_DSN", dsn)
    module = importlib.reload(importlib.import_module("rows_hook"))
    yield module, radiusd
    if module._held.conn is not None:
        module._held.conn.close()


def packets(gateway="127.0.0.1"):
    """A call's six packets as the worker's hook gets them behind the front end:
    stage 1, stage 2, both Starts, the billed (originate) Stop, the other Stop."""
    def access(called):
        return (("User-Name", CARD), ("User-Password", "1234"), ("Calling-Station-Id", CALLER),
                ("Called-Station-Id", called), ("h323-conf-id", "h323-conf-id=" + CONF),
                ("Kondge-Gateway-Address", gateway))

    def record(status, leg, seconds=None):
        return ((("Acct-Status-Type", status), ("Acct-Session-Id", CONF[-8:]),
                 ("User-Name", CARD), ("Calling-Station-Id", CALLER),
                 ("Called-Station-Id", DEST if leg == "originate" else ACCESS),
                 ("h323-conf-id", "h323-conf-id=" + CONF),
                 ("h323-call-origin", "h323-call-origin=" + leg),
                 ("Kondge-Gateway-Address", gateway))
                + ((("Acct-Session-Time", str(seconds)),) if seconds is not None else ()))
    return [("auth", access(ACCESS)), ("auth", access(DEST)),
            ("acct", record("Start", "answer")), ("acct", record("Start", "originate")),
            ("acct", record("Stop", "originate", 60)), ("acct", record("Stop", "answer", 80))]


def play(module, radiusd, items):
    for how, pairs in items:
        if how == "auth":
            answer = module.authorize(pairs)
            assert answer[0] == radiusd.RLM_MODULE_OK
            assert ("h323-credit-time", "h323-credit-time=3600") in answer[1]
        else:
            assert module.accounting(pairs) == radiusd.RLM_MODULE_OK


def test_a_call_through_the_hook_writes_the_rows_the_service_writes(hook, db, billing):
    module, radiusd = hook
    before = counts(db)
    service_call(billing, 1)
    after_service = counts(db)
    by_service = {t: after_service[t] - before[t] for t in TABLES}
    assert by_service["cdr"] == 1

    play(module, radiusd, packets())
    after = counts(db)
    assert {t: after[t] - after_service[t] for t in TABLES} == by_service
    assert after["balance"] == after_service["balance"] - Decimal("0.10")

    def read(cur):
        cur.execute("SELECT call_key, call_id, leg, duration, charge FROM kondge.cdr "
                    "WHERE call_id = %s", (CONF,))
        cdrs = cur.fetchall()
        cur.execute("SELECT leg, session_time FROM kondge.call_leg WHERE call_id = %s "
                    "AND stop_received_at IS NOT NULL ORDER BY leg", (CONF,))
        legs = cur.fetchall()
        cur.execute("SELECT count(*) AS n FROM kondge.reservation WHERE call_id = %s", (CONF,))
        return cdrs, legs, cur.fetchone()["n"]
    cdrs, legs, holds = db.run(read)
    # one CDR, of the billed leg, its key marked as the bench's (bench/floor.py counts them)
    assert cdrs == [{"call_key": "rows:" + CONF, "call_id": CONF, "leg": "originate",
                     "duration": 60, "charge": Decimal("0.10")}]
    assert legs == [{"leg": "answer", "session_time": 80},
                    {"leg": "originate", "session_time": 60}]
    assert holds == 0                       # the billed Stop removed the hold


def test_repeats_and_unknown_gateways_move_no_money(hook, db):
    module, radiusd = hook
    before = counts(db)
    call = packets()
    # the stage 2 and the billed Stop each sent twice, as a gateway retransmits them
    play(module, radiusd, call[:2] + [call[1]] + call[2:5] + [call[4]] + call[5:])
    after = counts(db)
    assert {t: after[t] - before[t] for t in TABLES} == {
        "call_login": 1, "reservation": 0, "call_leg": 2, "cdr": 1, "ledger_entry": 1}
    assert after["balance"] == before["balance"] - Decimal("0.10")

    # a packet that no front end named a known gateway for: refused, nothing written
    stranger = packets(gateway="192.0.2.9")
    assert module.authorize(stranger[1][1]) == radiusd.RLM_MODULE_REJECT
    assert module.accounting(stranger[4][1]) == radiusd.RLM_MODULE_OK
    assert counts(db) == after


@pytest.fixture
def priced(hook):
    """bench/priced_hook.py, on the rows hook just loaded (its connection)."""
    module, radiusd = hook
    return importlib.reload(importlib.import_module("priced_hook")), radiusd


def cdr_charges(db, call_id):
    def read(cur):
        cur.execute("SELECT call_key, duration, cost, charge FROM kondge.cdr WHERE call_id = %s",
                    (call_id,))
        return cur.fetchall()
    return db.run(read)


def test_the_priced_hook_grants_and_charges_what_the_service_does(priced, db, billing):
    """The priced kind rates as the service does: the same seconds granted for
    the same balance, the same charge for the same talk time (100 s to a UK
    mobile, 0.15 a minute in the demo tariff: its first block of 60 s and
    seven increments of 6 s, 102 s)."""
    from tests.db.test_call_path import account, acct, auth, login
    module, radiusd = priced
    service_conf = "h323-conf-id=5E000001 0F4411D6 AB5591F0 CBF3D765"
    grant = auth(billing, login(CARD, "1234", DEST, conf=service_conf))
    before = counts(db)

    call = packets()
    for _how, pairs in call[:1]:
        assert module.authorize(pairs)[0] == radiusd.RLM_MODULE_OK
    answer = module.authorize(call[1][1])
    assert answer[0] == radiusd.RLM_MODULE_OK
    assert ("h323-credit-time", f"h323-credit-time={grant.seconds}") in answer[1]
    stop = tuple(p for p in call[4][1] if p[0] != "Acct-Session-Time") + (
        ("Acct-Session-Time", "100"),)
    for pairs in (call[2][1], call[3][1], stop, call[5][1]):
        assert module.accounting(pairs) == radiusd.RLM_MODULE_OK
    priced_cdr, = cdr_charges(db, CONF)
    assert priced_cdr["call_key"] == "priced:" + CONF and priced_cdr["duration"] == 100
    after = counts(db)
    assert after["balance"] == before["balance"] - priced_cdr["charge"]

    # the service's call of the same talk time, on the hold it granted above
    for rec in (acct("Start", "answer", conf=service_conf),
                acct("Start", "originate", conf=service_conf),
                acct("Stop", "originate", 100, conf=service_conf),
                acct("Stop", "answer", 100, conf=service_conf)):
        assert account(billing, rec).outcome in ("recorded", "charged")
    service_cdr, = cdr_charges(db, service_conf.split("=", 1)[1])
    assert priced_cdr["charge"] == service_cdr["charge"] == Decimal("0.255")


def test_the_priced_hook_charges_a_repeated_stop_once(priced, db):
    module, radiusd = priced
    before = counts(db)
    call = packets()
    for how, pairs in call[:2] + [call[1]] + call[2:5] + [call[4]] + call[5:]:
        answer = module.authorize(pairs) if how == "auth" else module.accounting(pairs)
        assert (answer[0] if how == "auth" else answer) == radiusd.RLM_MODULE_OK
    after = counts(db)
    assert {t: after[t] - before[t] for t in TABLES} == {
        "call_login": 1, "reservation": 0, "call_leg": 2, "cdr": 1, "ledger_entry": 1}
    cdr, = cdr_charges(db, CONF)
    assert cdr["charge"] == Decimal("0.15")         # 60 s: the first block
    assert after["balance"] == before["balance"] - Decimal("0.15")
