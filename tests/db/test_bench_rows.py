"""bench/call_rows.py's rows kind writes, a call, the rows the service writes
(so that what it measures is the least the service's tables cost), and its
statements still fit the schema: a call of each, counted table by table;
its priced kind plays a call through bench/priced_hook.py."""

import sys
from decimal import Decimal

import psycopg2
import pytest

from bench import call_rows
from kondge_billing.operations import demo
from tests.db.test_call_path_plans import call as service_call

# the tables a call writes rows in (besides the card's balance)
TABLES = ("call_login", "reservation", "call_leg", "cdr", "ledger_entry")
CARD = "1000000008"


@pytest.fixture
def world(db, pin_key):
    db.run(lambda cur: demo.load(cur, pin_key))


def counts(db) -> dict:
    def read(cur):
        found = {}
        for table in TABLES:
            cur.execute(f"SELECT count(*) AS n FROM kondge.{table}")
            found[table] = cur.fetchone()["n"]
        cur.execute("SELECT balance FROM kondge.card WHERE number = %s", (CARD,))
        found["balance"] = cur.fetchone()["balance"]
        return found
    return db.run(read)


def test_the_rows_kind_writes_what_the_service_writes_for_a_call(world, db, dsn, billing):
    before = counts(db)
    service_call(billing, 1)
    after_service = counts(db)
    by_service = {t: after_service[t] - before[t] for t in TABLES}
    assert by_service["cdr"] == 1 and by_service["ledger_entry"] == 1
    assert after_service["balance"] < before["balance"]

    gw = db.run(lambda cur: (cur.execute("SELECT id FROM kondge.gateway WHERE address = "
                                         "'127.0.0.1'"), cur.fetchone())[1])["id"]
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            conf = "B0000001 0F4411D6 AB5591F0 CBF3D765"
            values = {"number": CARD, "gw": gw, "call": conf, "sess": conf[-8:],
                      "caller": "15550001111", "dest": "447911123456",
                      "access": "18005550100"}
            for packet in call_rows.rows_packets(cur, cur, values):
                packet()
            after_rows = counts(db)
            by_rows = {t: after_rows[t] - after_service[t] for t in TABLES}
            assert by_rows == by_service
            # the constant price: 0.10 charged, written as the service writes it
            assert after_rows["balance"] == after_service["balance"] - Decimal("0.10")
            cur.execute("SELECT count(*) FROM kondge.call_leg WHERE call_id = %s "
                        "AND stop_received_at IS NOT NULL", (conf,))
            assert cur.fetchone()[0] == 2

            cur.execute(call_rows.RECORD_TABLE)
            values = dict(values, call="F0000001 0F4411D6 AB5591F0 CBF3D765")
            for packet in call_rows.floor_packets(cur, values):
                packet()
            cur.execute("SELECT count(*) FROM bench_floor.record WHERE call_id = %s",
                        (values["call"],))
            assert cur.fetchone()[0] == 4                 # one row a record
    finally:
        conn.close()



def test_the_priced_kind_plays_a_call_through_the_priced_hook(world, db, dsn, monkeypatch):
    """call_rows's priced kind: the service's pairs through bench/priced_hook.py,
    one call, its CDR charged by the rating engine (60 s to a UK mobile in
    the demo tariff: 0.15) and its ledger entry the same."""
    radiusd = call_rows.stand_in_radiusd()
    monkeypatch.setitem(sys.modules, "radiusd", radiusd)
    monkeypatch.setenv("KONDGE_FLOOR_DSN", dsn)
    monkeypatch.syspath_prepend(str(call_rows.HOME / "bench"))
    hook = call_rows.priced_hook(dsn)
    before = counts(db)
    for packet in call_rows.priced_packets(hook, "127.0.0.1", CARD, "1234", "447911123456", 7):
        packet()
    after = counts(db)
    assert {t: after[t] - before[t] for t in TABLES} == {
        "call_login": 1, "reservation": 0, "call_leg": 2, "cdr": 1, "ledger_entry": 1}
    cdr = db.run(lambda cur: (cur.execute("SELECT call_key, charge FROM kondge.cdr "
                                          "WHERE call_key LIKE 'priced:%%'"), cur.fetchone())[1])
    assert cdr["charge"] == Decimal("0.15") == before["balance"] - after["balance"]
    hook.rows_hook._held.conn.close()
