"""Accounting: call legs, CDRs and the call charges. Owns their SQL."""

import json

# The rating of a stopped call (kondge.radius_rate_for_stop, migration 0007):
# the card named by the billed leg (or, if that leg carries none, by the
# other leg of the same call) and the rating context of the destination
# under the card's tariff, at the call's start, with the incoming leg's
# number as the access number. One round trip.
RATE_FOR_STOP = """
SELECT * FROM kondge.radius_rate_for_stop(%(number)s, %(gateway_id)s, %(call_id)s,
                                          %(destination)s, %(caller)s, %(at)s)
"""


def rate_for_stop(cur, gateway_id: int, call_id: str, number: str | None,
                  destination: str | None, caller: str | None = None,
                  at=None) -> dict:
    cur.execute(RATE_FOR_STOP, {"number": number, "gateway_id": gateway_id,
                                "call_id": call_id, "destination": destination or "",
                                "caller": caller, "at": at})
    return cur.fetchone()


def record_leg(cur, **values) -> dict:
    """kondge.record_leg(): the leg, and for the billed Stop the CDR and charge."""
    cur.execute(
        """SELECT * FROM kondge.record_leg(
               %(status)s, %(gateway_id)s, %(call_id)s, %(leg)s, %(acct_session_id)s,
               %(user_name)s, %(caller)s, %(called)s, %(setup)s, %(connect)s, %(disconnect)s,
               %(session_time)s, %(cause)s, %(flags)s, %(bill)s, %(card_number)s,
               %(destination)s, %(cost)s, %(currency)s, %(tariff_id)s, %(rate_prefix)s,
               %(price)s)""", values)
    return cur.fetchone()


def park(cur, pairs: list, error: str):
    cur.execute("SELECT kondge.radius_park(%s, %s)", (json.dumps(pairs), error[-4000:]))


CDR_COLUMNS = ["id", "created_at", "gateway", "call_id", "card_number", "batch", "caller",
               "destination", "connect_time", "disconnect_time", "duration",
               "disconnect_cause", "rate_prefix", "price_per_minute", "cost", "charge",
               "uncollected", "currency", "flags"]

LIST_CDRS = """
SELECT d.id, d.created_at, g.name AS gateway, d.call_id, d.card_number, b.name AS batch,
       d.caller, d.destination, d.connect_time, d.disconnect_time, d.duration,
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
 ORDER BY d.id DESC LIMIT %(limit)s
"""


def list_cdrs(cur, card_number: str | None = None, limit: int | None = 100, batch=None,
              gateway=None, destination=None, since=None, until=None) -> list[dict]:
    """The latest CDRs, newest first; every filter given must hold (destination: a prefix)."""
    cur.execute(LIST_CDRS, {"card": card_number, "batch": batch, "gateway": gateway,
                            "destination": destination, "since": since, "until": until,
                            "limit": limit})
    return cur.fetchall()
