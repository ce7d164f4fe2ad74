"""The rows the service keeps for a call, written with one plain statement a
packet: the "rows" kind of bench/call_rows.py (one process, no FreeRADIUS)
and of bench/floor.py (bench/rows_hook.py, inside FreeRADIUS workers).

In the service's own tables, with their indexes and constraints: stage 1
reads the card and keeps the call's login (call_login), committed without
waiting for the flush as the service's is; stage 2 reads the card and
places the hold (reservation); each Start inserts its leg (call_leg), the
billed one making the hold live; the other leg's Stop stops its leg; the
billed Stop stops its leg, removes the hold and writes the CDR, the ledger
entry and the card's balance. No PIN, no rating, no flags, no repeats or
reused ids, no lock on the card: the least any design on these tables
writes for a call, not a call path (the prices are constants).

Each statement takes its values by name: number (the card), gw (the
gateway's id), call (the call's id), key (its call_key: the call id, or one
marked as the bench's), sess, caller, dest, access, leg, called, seconds
(granted at stage 2, talked at a Stop) and digest; the hold's amount and
its price's ids (version_id, plan_id, destination_id, prefix), and the
billed Stop's cost and price a minute (ROWS_PRICES and ROWS_CHARGE: the
rows kind's constants). Both benches run them prepared once a connection
(STAGE1, ...), as the service runs its call-path statements.
"""

from decimal import Decimal

from kondge_billing.store.prepared import Prepared

ROWS_STAGE1 = """
WITH c AS (SELECT c.id, c.balance, c.currency, c.status, c.expires_at, cat.billing
             FROM kondge.card c JOIN kondge.category cat ON cat.name = c.category
            WHERE c.number = %(number)s),
     s AS (SELECT set_config('synchronous_commit', 'off', true)),
     l AS (INSERT INTO kondge.call_login (gateway_id, call_id, access_number, card_id)
           SELECT %(gw)s, %(call)s, %(access)s, c.id FROM c, s
           ON CONFLICT (gateway_id, call_id) DO NOTHING)
SELECT * FROM c"""
ROWS_STAGE2 = """
WITH c AS (SELECT c.id, c.balance, c.currency, c.category FROM kondge.card c
            WHERE c.number = %(number)s),
     h AS (INSERT INTO kondge.reservation
                  (card_id, gateway_id, call_id, call_key, caller, destination, access_number,
                   category, currency, amount, granted_seconds, hold_expires_at,
                   tariff_version_id, plan_id, destination_id, rate_prefix)
           SELECT c.id, %(gw)s, %(call)s, %(key)s, %(caller)s, %(dest)s, %(access)s,
                  c.category, c.currency, %(amount)s::numeric, %(seconds)s::integer,
                  now() + interval '60 s', %(version_id)s::integer, %(plan_id)s::integer,
                  %(destination_id)s::integer, %(prefix)s::text FROM c
           ON CONFLICT DO NOTHING
           RETURNING id)
SELECT c.balance, (SELECT id FROM h) AS hold_id FROM c"""
ROWS_START = """
INSERT INTO kondge.call_leg (gateway_id, call_id, call_key, leg, acct_session_id, user_name,
                             caller, called, start_received_at)
VALUES (%(gw)s, %(call)s, %(key)s, %(leg)s, %(sess)s, %(number)s, %(caller)s, %(called)s, now())
ON CONFLICT DO NOTHING"""
ROWS_BILLED_START = """
WITH l AS (""" + ROWS_START + """),
     h AS (UPDATE kondge.reservation SET state = 'live', acct_session_id = %(sess)s,
                  started_at = now(), start_received_at = now()
            WHERE gateway_id = %(gw)s AND call_key = %(key)s)
SELECT 1"""
ROWS_STOP = """
UPDATE kondge.call_leg SET stop_received_at = now(), session_time = %(seconds)s,
       disconnect_cause = '10', stop_digest = %(digest)s
 WHERE gateway_id = %(gw)s AND call_id = %(call)s AND leg = %(leg)s
   AND acct_session_id = %(sess)s AND call_key = %(key)s"""
ROWS_BILLED_STOP = """
WITH l AS (""" + ROWS_STOP + """ RETURNING id),
     h AS (DELETE FROM kondge.reservation WHERE gateway_id = %(gw)s AND call_key = %(key)s
           RETURNING card_id, currency, destination, access_number, category, granted_seconds),
     d AS (INSERT INTO kondge.cdr
                  (gateway_id, call_id, call_key, leg, acct_session_id, card_id, card_number,
                   caller, destination, access_number, category, duration, session_time,
                   disconnect_cause, price_per_minute, cost, charge, uncollected, currency,
                   granted_seconds)
           SELECT %(gw)s, %(call)s, %(key)s, %(leg)s, %(sess)s, h.card_id, %(number)s,
                  %(caller)s, h.destination, h.access_number, h.category, %(seconds)s,
                  %(seconds)s, '10', %(price)s::numeric, %(cost)s::numeric, %(cost)s::numeric,
                  0, h.currency, h.granted_seconds
             FROM h
           RETURNING id, card_id, charge),
     e AS (INSERT INTO kondge.ledger_entry (card_id, amount, kind, key, balance_after, note)
           SELECT c.id, -d.charge, 'call', 'call:' || %(gw)s || ':' || %(key)s,
                  c.balance - d.charge, 'cdr ' || d.id
             FROM d JOIN kondge.card c ON c.id = d.card_id
            WHERE d.charge > 0
           RETURNING card_id, balance_after)
UPDATE kondge.card c SET balance = e.balance_after FROM e WHERE c.id = e.card_id"""

# The "priced" kind (bench/priced_hook.py) keeps the rows above but prices in
# Python, as the service's architecture does: at stage 2 a first statement
# reads the card and the ids of the price its tariff gives the destination
# (kondge.rating_choice, the service's own choice), the engine works out the
# seconds and the amount, and STAGE2 holds them; at the billed Stop a first
# statement reads the hold, the engine prices the call, and BILLED_STOP
# charges it.
PRICED_CHOICE = """
SELECT c.id, c.balance, c.category, r.version_id, r.plan_id, r.destination_id, r.prefix
  FROM kondge.card c JOIN kondge.category cat ON cat.name = c.category,
       kondge.rating_choice(c.category, %(dest)s, %(caller)s, %(access)s, %(gw)s, now(),
                            coalesce(c.tariff_id, cat.tariff_id)) r
 WHERE c.number = %(number)s"""
PRICED_HOLD = """
SELECT r.granted_seconds, r.amount, coalesce(r.started_at, r.created_at), r.tariff_version_id,
       r.plan_id, r.destination_id, r.rate_prefix, r.category, r.access_number, r.caller
  FROM kondge.reservation r
 WHERE r.gateway_id = %(gw)s AND r.call_key = %(key)s"""


STAGE1, STAGE2, START, BILLED_START, STOP, BILLED_STOP, CHOICE, HOLD = (
    Prepared(f"bench_rows_{name}", text) for name, text in (
        ("stage1", ROWS_STAGE1), ("stage2", ROWS_STAGE2), ("start", ROWS_START),
        ("billed_start", ROWS_BILLED_START), ("stop", ROWS_STOP),
        ("billed_stop", ROWS_BILLED_STOP), ("priced_choice", PRICED_CHOICE),
        ("priced_hold", PRICED_HOLD)))

#: each kind's mark on its call keys, so that bench/floor.py counts its CDRs apart
MARKS = {"rows": "rows:", "priced": "priced:"}
#: what the rows kind holds and charges a call: constants, no rating
ROWS_PRICES = {"amount": Decimal("1.00"), "seconds": 600, "version_id": None, "plan_id": None,
               "destination_id": None, "prefix": None}
ROWS_CHARGE = {"cost": Decimal("0.10"), "price": Decimal("0.10")}
