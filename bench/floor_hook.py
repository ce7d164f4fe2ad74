"""The least work a billing hook could do per packet: bench/floor.py's workers.

Loaded by rlm_python3 in minimal_radius's "floor" FreeRADIUS, under the same
Python lock as the service's hook, with one psycopg2 connection per
FreeRADIUS process (as the service's hook holds it: one hook runs at a
time in a process), autocommit:

- Access-Request: one SELECT by key (the card's balance by its number),
  answered with fixed h323 credit pairs. The service does more: it checks
  the PIN, the category and live calls, rates the destination and, at
  stage 2, writes a hold.
- Accounting-Request: one INSERT of the record's identity, committed before
  the answer (a retransmission inserts nothing). The service does more: it
  keeps the leg, and at the billed Stop prices the call and writes the CDR,
  the ledger entry and the card's new balance in one transaction.

So no design that stores each accounting record in PostgreSQL before
answering it, and calls Python per packet, can be cheaper than this.
The database is named by KONDGE_FLOOR_DSN in FreeRADIUS's environment.
"""

import os
import types

import psycopg2
import radiusd

_held = types.SimpleNamespace(conn=None)       # the process's one connection
ACCEPT = ((("h323-return-code", "h323-return-code=0"),
           ("h323-credit-time", "h323-credit-time=3600")),
          (("Auth-Type", ":=", "Accept"),))
INSERT = ("INSERT INTO bench_floor.record (call_id, leg, status) VALUES (%s, %s, %s) "
          "ON CONFLICT DO NOTHING")


def _cursor():
    conn = _held.conn
    if conn is None or conn.closed:
        conn = _held.conn = psycopg2.connect(os.environ["KONDGE_FLOOR_DSN"])
        conn.autocommit = True
    return conn.cursor()


def _value(pairs, name):
    for item in pairs:
        if item[0] == name:
            return item[-1]
    return None


def instantiate(_p):
    return radiusd.RLM_MODULE_OK


def authorize(p):
    with _cursor() as cur:
        cur.execute("SELECT balance FROM kondge.card WHERE number = %s", (_value(p, "User-Name"),))
        if cur.fetchone() is None:
            return radiusd.RLM_MODULE_REJECT
    return (radiusd.RLM_MODULE_OK,) + ACCEPT


def accounting(p):
    with _cursor() as cur:
        cur.execute(INSERT, (_value(p, "h323-conf-id"), _value(p, "h323-call-origin"),
                             _value(p, "Acct-Status-Type")))
    return radiusd.RLM_MODULE_OK
