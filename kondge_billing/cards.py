"""Cards: issue, look up, show. Owns the card table's SQL."""

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from . import audit
from .money import ZERO, to_decimal
from .pins import pin_hash
from .request import PIN, card_number_problem
from .tariffs.codec import context_from_json
from .tariffs.engine import RatingContext


class CardError(ValueError):
    pass


@dataclass(frozen=True)
class CallCard:
    """What the call path needs of a card, with the rating of the number dialled."""

    id: int
    number: str
    pin_hash: str
    balance: Decimal
    currency: str
    status: str
    expires_at: datetime | None
    language: str
    rating: RatingContext | None        # for Called-Station-Id, if it has a rate
    called_is_access_number: bool
    billing: str                        # prepaid | postpaid
    credit_limit: Decimal
    max_calls: int
    max_call_seconds: int | None
    held: Decimal                       # reserved by the card's other active calls
    active_calls: int                   # the card's other active calls
    access_number: str | None           # the number the call came in on
    access_login: str                   # card | caller | both (its policy; default both)
    access_language: str | None
    access_prompt_id: int | None
    auto_bind: bool                     # the category binds callers after a card login
    max_callers: int
    callers_bound: int
    caller_card_id: int | None          # the card the caller number is bound to, if any

    @property
    def language_for_call(self) -> str:
        """The access number's language if it has one, else the card's."""
        return self.access_language or self.language

    @property
    def available(self) -> Decimal:
        """What a new call may spend: balance (+ credit) - other calls' holds."""
        credit = self.credit_limit if self.billing == "postpaid" else ZERO
        return self.balance + credit - self.held


# One round trip: the card (by its number, or by the caller number bound to
# it), its category, what its other live calls hold, the access number the
# call came in on and its policy, the card's bound callers, and, for a
# number dialled that is not an access number, its rating context under the
# card's tariff (kondge.rating_context, migration 0003: plan, longest prefix,
# rates in every band). A stage-2 request's access number is the incoming
# leg's Called-Station-Id, if that leg's Start is in.
CALL_LOOKUP = """
SELECT c.id, c.number, c.pin_hash, c.balance, c.currency, c.status, c.expires_at, c.language,
       cat.billing, cat.credit_limit, cat.max_calls, cat.max_call_seconds,
       cat.auto_bind, cat.max_callers,
       coalesce(h.held, 0) AS held, coalesce(h.active_calls, 0) AS active_calls,
       x.called_is_access_number, x.access_number,
       coalesce(acc.login, 'both') AS access_login, acc.language AS access_language,
       acc.prompt_id AS access_prompt_id,
       (SELECT count(*) FROM kondge.caller b WHERE b.card_id = c.id) AS callers_bound,
       (SELECT b.card_id FROM kondge.caller b WHERE b.number = %(caller_number)s)
           AS caller_card_id,
       CASE WHEN NOT x.called_is_access_number THEN kondge.rating_context(
           c.category, %(called)s, %(caller)s, x.access_number,
           %(gateway_id)s, %(at)s, c.tariff_id)::text END AS rating
  FROM kondge.card c
  JOIN kondge.category cat ON cat.name = c.category
  CROSS JOIN LATERAL (
        SELECT a.number IS NOT NULL AS called_is_access_number,
               coalesce(a.number,
                        (SELECT l.called FROM kondge.call_leg l
                          WHERE l.gateway_id = %(gateway_id)s AND l.call_id = %(conf_id)s
                            AND l.leg = 'answer')) AS access_number
          FROM (SELECT 1) one
          LEFT JOIN kondge.access_number a ON a.number = %(called)s) x
  LEFT JOIN kondge.access_number acc ON acc.number = x.access_number
  LEFT JOIN LATERAL (
        SELECT sum(a.amount) AS held, count(*) AS active_calls
          FROM kondge.v_active_reservation a
         WHERE a.card_id = c.id
           AND NOT (a.gateway_id = %(gateway_id)s AND a.call_id = %(call_id)s)) h ON true
"""
BY_NUMBER = CALL_LOOKUP + " WHERE c.number = %(number)s"
BY_CALLER = CALL_LOOKUP + (" WHERE c.id = (SELECT card_id FROM kondge.caller"
                           " WHERE number = %(caller_number)s)")


def for_call(cur, number: str | None, called: str | None, caller: str | None = None,
             gateway_id: int | None = None, conf_id: str | None = None,
             call_id: str = "", at: datetime | None = None,
             caller_number: str | None = None) -> CallCard | None:
    """The card for a call, by its number or (number None) by the caller
    number bound to it. (gateway_id, call_id) names the call itself, whose
    own earlier hold (a repeated authorisation) does not count against it."""
    cur.execute(BY_NUMBER if number is not None else BY_CALLER, {
        "number": number, "called": called or "", "caller": caller,
        "caller_number": caller_number, "gateway_id": gateway_id, "conf_id": conf_id,
        "call_id": call_id, "at": at or datetime.now(timezone.utc)})
    row = cur.fetchone()
    if row is None:
        return None
    return CallCard(id=row["id"], number=row["number"], pin_hash=row["pin_hash"],
                    balance=row["balance"], currency=row["currency"], status=row["status"],
                    expires_at=row["expires_at"], language=row["language"],
                    rating=context_from_json(row["rating"]),
                    called_is_access_number=row["called_is_access_number"],
                    billing=row["billing"], credit_limit=row["credit_limit"],
                    max_calls=row["max_calls"], max_call_seconds=row["max_call_seconds"],
                    held=row["held"], active_calls=row["active_calls"],
                    access_number=row["access_number"], access_login=row["access_login"],
                    access_language=row["access_language"],
                    access_prompt_id=row["access_prompt_id"],
                    auto_bind=row["auto_bind"], max_callers=row["max_callers"],
                    callers_bound=row["callers_bound"], caller_card_id=row["caller_card_id"])


def add(cur, key: bytes, number: str, pin: str, balance, currency: str,
        category: str = "standard", language: str = "en",
        expires_at: datetime | None = None, check_digit: str = "luhn") -> dict:
    """Issue one card; its opening balance is the card's first ledger entry."""
    problems = []
    problem = card_number_problem(number or "", check_digit)
    if problem:
        problems.append(problem)
    if not PIN.match(pin or ""):
        problems.append("PIN: 1 to 16 digits")
    try:
        amount = to_decimal(balance)
        if amount < 0:
            problems.append("balance: must not be negative")
    except ValueError as exc:
        problems.append(f"balance: {exc}")
        amount = ZERO
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
        problems.append("currency: a three-letter ISO 4217 code such as USD")
    if not (language.isalpha() and language.islower() and 2 <= len(language) <= 3):
        problems.append("language: a two- or three-letter code such as en")
    if problems:
        raise CardError("; ".join(problems))
    cur.execute("SELECT 1 FROM kondge.card WHERE number = %s", (number,))
    if cur.fetchone():
        raise CardError(f"card {number} exists already")
    cur.execute(
        """WITH c AS (
               INSERT INTO kondge.card (number, pin_hash, balance, currency, category,
                                        language, expires_at)
               VALUES (%(number)s, %(hash)s, %(amount)s, %(currency)s, %(category)s,
                       %(language)s, %(expires)s)
               RETURNING id, balance)
           INSERT INTO kondge.ledger_entry (card_id, amount, kind, key, balance_after, note)
           SELECT id, balance, 'issue', 'issue:' || %(number)s, balance, 'card issued' FROM c
           RETURNING card_id""",
        {"number": number, "hash": pin_hash(key, number, pin), "amount": amount,
         "currency": currency.upper(), "category": category, "language": language,
         "expires": expires_at})
    return show(cur, number)


def show(cur, number: str) -> dict | None:
    cur.execute(
        """SELECT c.number, c.balance, c.currency, c.status, c.category, c.language,
                  c.expires_at, c.created_at, c.serial, b.name AS batch, c.activated_at,
                  c.first_used_at,
                  (SELECT count(*) FROM kondge.cdr WHERE card_id = c.id) AS calls,
                  (SELECT coalesce(sum(amount), 0) FROM kondge.ledger_entry
                    WHERE card_id = c.id) AS ledger_sum
             FROM kondge.card c LEFT JOIN kondge.batch b ON b.id = c.batch_id
            WHERE c.number = %s""", (number,))
    return cur.fetchone()


# Value left on an expired card leaves it through the ledger: one 'expiry'
# entry per card and expiry date, so running it again changes nothing.
EXPIRE = """
WITH due AS (
    SELECT id, balance, expires_at FROM kondge.card
     WHERE expires_at <= %(now)s AND balance > 0
     FOR UPDATE),
gone AS (
    INSERT INTO kondge.ledger_entry (card_id, amount, kind, key, balance_after, note)
    SELECT id, -balance, 'expiry',
           'expiry:' || id || ':' || extract(epoch FROM expires_at)::bigint, 0,
           'value expired with the card'
      FROM due
    ON CONFLICT (key) DO NOTHING
    RETURNING card_id, amount)
UPDATE kondge.card c SET balance = c.balance + gone.amount
  FROM gone WHERE c.id = gone.card_id
RETURNING c.id, -gone.amount AS expired, c.currency
"""


def expire(cur, operator: str, now: datetime | None = None) -> dict:
    """Move the remaining balance of every expired card to zero."""
    cur.execute("SELECT coalesce(%s, now()) AS now", (now,))
    now = cur.fetchone()["now"]
    cur.execute(EXPIRE, {"now": now})
    totals: dict[str, Decimal] = {}
    rows = cur.fetchall()
    for row in rows:
        totals[row["currency"]] = totals.get(row["currency"], ZERO) + row["expired"]
    audit.record(cur, operator, "expire", len(rows), {"expired_by": now.isoformat()},
                 {"value": {k: str(v) for k, v in totals.items()}})
    return {"cards": len(rows), "value": totals, "as_of": now}
