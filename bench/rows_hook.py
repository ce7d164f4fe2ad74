"""The rows the service keeps for a call, written by a hook inside FreeRADIUS:
bench/floor.py's "rows" workers.

Loaded by rlm_python3 in minimal_radius's "rows" FreeRADIUS, under the same
Python lock as the service's hook, with one psycopg2 connection per
process, autocommit, like bench/floor_hook.py; but where the floor reads
the card and inserts one record of its own, this hook writes what the
service writes for a call, in the service's own tables, one statement a
packet (bench/rows_statements.py, prepared once a connection as the
service's statements are): the login at stage 1, the hold at
stage 2, a leg at each Start (the billed one making the hold live), the
leg stopped at each Stop, and at the billed Stop the CDR, the ledger entry
and the card's balance. No PIN, no rating, no rule, constant prices: the
least any design that keeps these rows could do, so the service's
throughput against this kind's says what its rules and rating cost, and
this kind's against the floor's what the rows cost.

The gateway is the one the front end names (Kondge-Gateway-Address; the
raddb includes the service's dictionary), its id read with the access
numbers when the process connects: an Access-Request to an access number
is a stage 1, any other a stage 2. Every call key is marked "rows:", so
that the bench tells this kind's CDRs from the service's. The originating
leg is the billed one (the bench's gateways are Cisco, billed_leg
originate). The database is named by KONDGE_FLOOR_DSN.
"""

import os
import types

import psycopg2
import radiusd

# the floor's answer to an Access-Request, and its instantiate
from floor_hook import ACCEPT, instantiate  # noqa: F401 - rlm_python3 calls instantiate
from rows_statements import (BILLED_START, BILLED_STOP, MARKS, ROWS_CHARGE, ROWS_PRICES,
                             STAGE1, STAGE2, START, STOP)

#: the process's one connection, the gateways' ids by address, the access numbers
_held = types.SimpleNamespace(conn=None, gateways={}, access=frozenset(), first_access=None)
KEY_MARK = MARKS["rows"]
BILLED_LEG = "originate"


def _cursor():
    conn = _held.conn
    if conn is None or conn.closed:
        conn = psycopg2.connect(os.environ["KONDGE_FLOOR_DSN"])
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT host(address), id FROM kondge.gateway WHERE removed_at IS NULL")
            _held.gateways = dict(cur.fetchall())
            cur.execute("SELECT number FROM kondge.access_number ORDER BY number")
            numbers = [n for (n,) in cur.fetchall()]
        _held.access = frozenset(numbers)
        _held.first_access = numbers[0] if numbers else None
        _held.conn = conn
    return conn.cursor()


def _values(pairs) -> dict:
    """The packet's attributes by name (the first of each), Cisco's "name=value"
    strings without their name."""
    out = {}
    for item in pairs:
        name, value = item[0], item[-1]
        if name in out:
            continue
        if name.startswith("h323-") and value.startswith(name + "="):
            value = value[len(name) + 1:]
        out[name] = value
    return out


def _call(v: dict, mark: str = KEY_MARK) -> dict:
    call = v.get("h323-conf-id") or v.get("Acct-Session-Id") or ""
    return {"number": v.get("User-Name"), "gw": _held.gateways.get(v.get("Kondge-Gateway-Address")),
            "call": call, "key": mark + call, "sess": v.get("Acct-Session-Id", ""),
            "caller": v.get("Calling-Station-Id"), "called": v.get("Called-Station-Id"),
            "dest": v.get("Called-Station-Id"), "access": _held.first_access}


def _stage2(cur, values: dict):
    """The hold, at the rows kind's constant amount and seconds: the floor's
    answer (None: no such card)."""
    STAGE2.run(cur, dict(values, **ROWS_PRICES))
    return ACCEPT if cur.fetchone() is not None else None


def _billed_stop(cur, values: dict):
    """The billed leg stopped, the hold removed, the CDR, ledger entry and
    balance at the rows kind's constant charge."""
    BILLED_STOP.run(cur, dict(values, **ROWS_CHARGE))


def serve_access(p, mark: str = KEY_MARK, stage2=_stage2):
    """An Access-Request: stage 1 by its access number (the floor's answer),
    else stage2(cursor, values): its (reply, control) pairs, None to reject."""
    with _cursor() as cur:
        values = _call(_values(p), mark)
        if values["gw"] is None:
            return radiusd.RLM_MODULE_REJECT
        if values["called"] in _held.access:
            STAGE1.run(cur, values)
            answer = ACCEPT if cur.fetchone() is not None else None
        else:
            answer = stage2(cur, values)
        if answer is None:
            return radiusd.RLM_MODULE_REJECT
    return (radiusd.RLM_MODULE_OK,) + answer


def serve_accounting(p, mark: str = KEY_MARK, billed_stop=_billed_stop):
    """An Accounting-Request: each Start inserts its leg, each Stop stops it,
    the billed one through billed_stop(cursor, values)."""
    with _cursor() as cur:
        v = _values(p)
        values = _call(v, mark)
        status, leg = v.get("Acct-Status-Type"), v.get("h323-call-origin")
        if values["gw"] is None or status not in ("Start", "Stop"):
            return radiusd.RLM_MODULE_OK
        values["leg"] = leg
        billed = leg == BILLED_LEG
        if status == "Start":
            (BILLED_START if billed else START).run(cur, values)
        else:
            values["seconds"] = int(v.get("Acct-Session-Time") or 0)
            values["digest"] = values["call"] + (leg or "")
            if billed:
                billed_stop(cur, values)
            else:
                STOP.run(cur, values)
    return radiusd.RLM_MODULE_OK


def authorize(p):
    return serve_access(p)


def accounting(p):
    return serve_accounting(p)
