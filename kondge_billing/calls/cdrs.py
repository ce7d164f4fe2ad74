"""Accounting: call legs, CDRs and the call charges. Owns their SQL.

An accounting record goes through kondge.radius_account, which decides
which leg of which call it is, stores it, and for the billed leg's Stop
hands back what the call was authorised with; the service prices the call
and stores it with kondge.radius_settle (or radius_correct, for the real
Stop of a call the sweep closed). See sql/functions/radius_*.sql.
"""

import json

from ..store import prices
from ..store.prepared import Prepared

ACCOUNT = Prepared("kondge_radius_account", """
SELECT * FROM kondge.radius_account(
    %(status)s, %(gateway_id)s, %(billed_leg)s, %(call_id)s, %(has_conf)s, %(origin)s,
    %(call_type)s, %(acct_session_id)s, %(user_name)s, %(card_number)s, %(caller_number)s,
    %(caller)s, %(called)s, %(setup)s, %(connect)s, %(disconnect)s, %(session_time)s,
    %(cause)s, %(flags)s, %(digest)s)
""")

SETTLE = Prepared("kondge_radius_settle", """
SELECT * FROM kondge.radius_settle(
    %(gateway_id)s, %(call_key)s, %(call_id)s, %(leg)s, %(acct_session_id)s, %(hold_id)s,
    %(card_id)s, %(charge)s, %(user_name)s, %(caller)s, %(called)s, %(setup)s, %(connect)s,
    %(disconnect)s, %(session_time)s, %(duration)s, %(cause)s, %(flags)s, %(digest)s,
    %(destination)s, %(access_number)s, %(category)s, %(version_id)s, %(plan_id)s,
    %(destination_id)s, %(rate_prefix)s, %(price)s, %(cost)s, %(currency)s, %(granted)s,
    %(authorised_at)s)
""")

CORRECT = """
SELECT * FROM kondge.radius_correct(
    %(cdr_id)s, %(leg)s, %(acct_session_id)s, %(disconnect)s, %(session_time)s,
    %(duration)s, %(cause)s, %(digest)s, %(cost)s, %(flags)s)
"""


def account(cur, gateway_name=None, **values) -> dict:
    """kondge.radius_account(): store the record, or say what its Stop needs:
    the row, with the call's rating as `rating` (a prices.CallRating; the
    gateway's name is one of its facts)."""
    ACCOUNT.run(cur, values)
    row = cur.fetchone()
    row["rating"] = prices.from_row(cur, row, category=row["category"],
                                    access_number=row["access_number"],
                                    caller=row.pop("rating_caller"), gateway=gateway_name)
    return row


def settle(cur, **values) -> dict:
    """kondge.radius_settle(): the priced Stop: leg, CDR and charge at once."""
    SETTLE.run(cur, values)
    return cur.fetchone()


def correct(cur, **values) -> dict:
    """kondge.radius_correct(): the real Stop of a call the sweep closed."""
    cur.execute(CORRECT, values)
    return cur.fetchone()


def park(cur, pairs: list, error: str):
    cur.execute("SELECT kondge.radius_park(%s, %s)", (json.dumps(pairs), error[-4000:]))


def set_unauthorised_calls(cur, policy: str):
    """Tell the database whether a call nobody authorised is charged ('charge')
    or only recorded ('record'): KONDGE_UNAUTHORISED_CALLS, written by the
    supervisor at every start (as the owner: the call path's role cannot)."""
    cur.execute("UPDATE kondge.call_policy SET unauthorised_calls = %s", (policy,))


def parked(cur, waiting_only: bool = True, record_id: int | None = None,
           limit: int | None = 100) -> list[dict]:
    """Records kept in kondge.unprocessed_record, oldest first."""
    cur.execute("""SELECT id, received_at, pairs, error, replayed_at, replay_outcome
                     FROM kondge.unprocessed_record
                    WHERE (NOT %(waiting)s OR replayed_at IS NULL)
                      AND (%(id)s::bigint IS NULL OR id = %(id)s)
                    ORDER BY id LIMIT %(limit)s""",
                {"waiting": waiting_only, "id": record_id, "limit": limit})
    return cur.fetchall()


def mark_replayed(cur, record_id: int, outcome: str):
    cur.execute("""UPDATE kondge.unprocessed_record SET replayed_at = now(), replay_outcome = %s
                    WHERE id = %s AND replayed_at IS NULL""", (outcome, record_id))
    return cur.rowcount == 1


CDR_COLUMNS = ["id", "created_at", "gateway", "call_id", "acct_session_id", "card_number", "batch", "caller",
               "destination", "access_number", "connect_time", "disconnect_time", "duration",
               "disconnect_cause", "rate_prefix", "price_per_minute", "cost", "charge",
               "uncollected", "currency", "flags"]

LIST_CDRS = """
SELECT d.id, d.created_at, g.name AS gateway, d.call_id, d.acct_session_id, d.card_number,
       b.name AS batch,
       d.caller, d.destination, d.access_number, d.connect_time, d.disconnect_time, d.duration,
       d.disconnect_cause, d.rate_prefix, d.price_per_minute, d.cost, d.charge,
       d.uncollected, d.currency, d.flags
  FROM kondge.cdr d
  JOIN kondge.gateway g ON g.id = d.gateway_id
  LEFT JOIN kondge.card c ON c.id = d.card_id
  LEFT JOIN kondge.batch b ON b.id = c.batch_id
 WHERE (%(card)s::text IS NULL OR d.card_number = %(card)s)
   AND (%(batch)s::text IS NULL OR b.name = %(batch)s)
   AND (%(gateway)s::text IS NULL OR g.name = %(gateway)s)
   AND (%(destination)s::text IS NULL OR d.destination LIKE %(destination)s || '%%')
   AND (%(since)s::timestamptz IS NULL OR coalesce(d.connect_time, d.created_at) >= %(since)s)
   AND (%(until)s::timestamptz IS NULL OR coalesce(d.connect_time, d.created_at) < %(until)s)
   AND (%(flag)s::text IS NULL OR %(flag)s = ANY (d.flags))
 ORDER BY d.id DESC LIMIT %(limit)s
"""


def list_cdrs(cur, card_number: str | None = None, limit: int | None = 100, batch=None,
              gateway=None, destination=None, since=None, until=None,
              flag=None) -> list[dict]:
    """The latest CDRs, newest first; every filter given must hold (destination: a
    prefix; flag: one of the CDR's flags)."""
    cur.execute(LIST_CDRS, {"card": card_number, "batch": batch, "gateway": gateway,
                            "destination": destination, "since": since, "until": until,
                            "flag": flag, "limit": limit})
    return cur.fetchall()
