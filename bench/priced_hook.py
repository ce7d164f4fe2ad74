"""The service's rows priced as the service prices them, written by a hook
inside FreeRADIUS: bench/floor.py's "priced" workers.

bench/rows_hook.py with the rating of the service's architecture: the
rate deck lives in PostgreSQL and the rating engine in the hook's Python
(kondge_billing.rating.engine), so the two packets that need a price take
two statements each, with the engine between them:

- stage 2: the card and the ids of the price its tariff gives the
  destination (kondge.rating_choice, the service's own choice), then the
  engine's seconds and amount for the card's balance (allowed_seconds,
  call_cost, as the service's stage 2), then the hold (the rows kind's
  statement, with that amount and the ids); the answer grants the seconds;
- the billed Stop: the hold, then the engine's price of the seconds talked
  from the call's start (rate_call, as the service's Stop), then the rows
  kind's statement with that cost.

A rating is read once per ids with kondge.radius_price and kept, as the
service keeps it (kondge_billing/store/prices.py). Every other packet is
the rows kind's. No PIN, no live-call count, no repeats or flags: the
least a design with the service's tables and its rating in the hook's
Python could cost. Its call keys are marked "priced:".
"""

from datetime import datetime, timezone
from decimal import Decimal

import psycopg2.extras
import radiusd

import rows_hook
from floor_hook import instantiate  # noqa: F401 - rlm_python3 calls instantiate
from kondge_billing import config
from kondge_billing.rating.engine import allowed_seconds, call_cost, rate_call
from kondge_billing.store import prices
from rows_statements import BILLED_STOP, CHOICE, HOLD, MARKS, STAGE2

KEY_MARK = MARKS["priced"]
#: the longest call granted: the service's setting (KONDGE_MAX_CREDIT_TIME), read
#: as the service reads it
CAP = config.load().max_credit_time
CONTROL = (("Auth-Type", ":=", "Accept"),)


def _rating(cur, version_id, plan_id, destination_id, prefix, **facts):
    """The rating of these ids as the service keeps it (prices.call_rating:
    read with radius_price only the first time, on a dict cursor as the
    service reads it)."""
    with cur.connection.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as dict_cur:
        return prices.call_rating(dict_cur, version_id, plan_id, destination_id, prefix,
                                  **facts).context


def _stage2(cur, values: dict):
    CHOICE.run(cur, values)
    row = cur.fetchone()
    if row is None:
        return None
    _card, balance, category, version_id, plan_id, destination_id, prefix = row
    rating = _rating(cur, version_id, plan_id, destination_id, prefix, category=category,
                     access_number=values["access"], caller=values["caller"])
    if rating is None:
        return None
    now = datetime.now(timezone.utc)
    seconds = allowed_seconds(rating, now, balance, CAP)
    if not seconds:
        return None
    STAGE2.run(cur, dict(values, amount=call_cost(rating, now, seconds), seconds=seconds,
                         version_id=version_id, plan_id=plan_id,
                         destination_id=destination_id, prefix=prefix))
    if cur.fetchone() is None:
        return None
    return ((("h323-return-code", "h323-return-code=0"),
             ("h323-credit-time", f"h323-credit-time={seconds}")), CONTROL)


def _billed_stop(cur, values: dict):
    HOLD.run(cur, values)
    row = cur.fetchone()
    cost, price = Decimal(0), None
    if row is not None:
        (_granted, _amount, start, version_id, plan_id, destination_id, prefix, category,
         access, caller) = row
        rating = _rating(cur, version_id, plan_id, destination_id, prefix, category=category,
                         access_number=access, caller=caller)
        if rating is not None:
            priced = rate_call(rating, start, values["seconds"], explain=False)
            cost = priced.cost
            price = priced.rate.steps[0].per_minute if priced.rate else None
    BILLED_STOP.run(cur, dict(values, cost=cost, price=price))


def authorize(p):
    return rows_hook.serve_access(p, KEY_MARK, _stage2)


def accounting(p):
    return rows_hook.serve_accounting(p, KEY_MARK, _billed_stop)
