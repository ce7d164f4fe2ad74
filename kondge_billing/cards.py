"""Cards: issue, look up, show. Owns the card table's SQL."""

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

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


# One round trip: the card, the rating context of the number dialled under
# the card's tariff (kondge.rating_context, migration 0003: plan, longest
# prefix, rates in every band), and whether that number is one of our
# access numbers. The access number of a stage-2 request is the one the
# call came in on: the incoming leg's Called-Station-Id, if its Start is in.
CALL_LOOKUP = """
SELECT c.id, c.number, c.pin_hash, c.balance, c.currency, c.status, c.expires_at, c.language,
       kondge.rating_context(
           c.category, %(called)s, %(caller)s,
           (SELECT l.called FROM kondge.call_leg l
             WHERE l.gateway_id = %(gateway_id)s AND l.call_id = %(conf_id)s
               AND l.leg = 'answer'),
           %(gateway_id)s, %(at)s, c.tariff_id)::text AS rating,
       EXISTS (SELECT 1 FROM kondge.access_number a WHERE a.number = %(called)s)
           AS called_is_access_number
  FROM kondge.card c
 WHERE c.number = %(number)s
"""


def for_call(cur, number: str, called: str | None, caller: str | None = None,
             gateway_id: int | None = None, conf_id: str | None = None,
             at: datetime | None = None) -> CallCard | None:
    cur.execute(CALL_LOOKUP, {"number": number, "called": called or "", "caller": caller,
                              "gateway_id": gateway_id, "conf_id": conf_id,
                              "at": at or datetime.now(timezone.utc)})
    row = cur.fetchone()
    if row is None:
        return None
    return CallCard(id=row["id"], number=row["number"], pin_hash=row["pin_hash"],
                    balance=row["balance"], currency=row["currency"], status=row["status"],
                    expires_at=row["expires_at"], language=row["language"],
                    rating=context_from_json(row["rating"]),
                    called_is_access_number=row["called_is_access_number"])


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
                  c.expires_at, c.created_at,
                  (SELECT count(*) FROM kondge.cdr WHERE card_id = c.id) AS calls,
                  (SELECT coalesce(sum(amount), 0) FROM kondge.ledger_entry
                    WHERE card_id = c.id) AS ledger_sum
             FROM kondge.card c WHERE c.number = %s""", (number,))
    return cur.fetchone()
