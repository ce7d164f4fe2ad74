"""Cards: issue, look up, show. Owns the card table's SQL."""

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from . import audit, ledger, card_tariffs, categories, currencies
from .money import ZERO, Money, operator_amount
from .pins import pin_hash
from .identifiers import card_number_problem, language_problem, pin_problem
from .tariffs.codec import context_from_json, loads
from .tariffs.engine import RatingContext


class CardError(ValueError):
    pass


@dataclass(frozen=True)
class CallCard:
    """What the call path needs of a card, with the rating of the number dialled."""

    id: int
    number: str
    balance: Decimal
    currency: str
    status: str
    expires_at: datetime | None
    language: str
    category: str
    rating: RatingContext | None        # stage 2: the destination's price, if it has one
    price: dict | None                  # ...and what chose it (kondge.rating_json: ids)
    stage: str                          # login (stage 1) | destination (stage 2)
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
    def available(self) -> Money:
        """What a new call may spend: balance (+ credit) - other calls' holds."""
        credit = self.credit_limit if self.billing == "postpaid" else ZERO
        return Money(self.balance + credit - self.held, self.currency.strip())


@dataclass(frozen=True)
class CallRefused:
    """A card-number login the database refused before handing out the card:
    `refusal` is unknown, wrong-pin, card-locked, caller-locked or
    gateway-locked; `until`, for a lock, its end ('infinity': until unlocked)."""

    refusal: str
    until: str | None = None


# One round trip: kondge.radius_card() (sql/functions/radius_card.sql)
# returns the card (by its number, with the PIN checked against the keyed
# hash we pass, or by the caller number bound to it) or why not, its
# category, what its other calls hold, the stage, the access number the call
# came in on and its policy, the card's bound callers, and at stage 2 the
# rating of the destination under the card's tariff (kondge.rating_context).
CALL_LOOKUP = """
SELECT * FROM kondge.radius_card(%(number)s, %(pin_hash)s, %(caller_number)s, %(called)s,
                                 %(caller)s, %(gateway_id)s, %(call_id)s, %(conf_id)s,
                                 %(stage)s, %(at)s)
"""


def for_call(cur, number: str | None, called: str | None, caller: str | None = None,
             gateway_id: int | None = None, conf_id: str | None = None,
             call_id: str = "", at: datetime | None = None,
             caller_number: str | None = None, pin_hash: str | None = None,
             stage: str | None = None) -> CallCard | CallRefused | None:
    """The card for a call, by its number and PIN (CallRefused when the
    database refuses them) or (number None) by the caller number bound to it
    (None: bound to no card). (gateway_id, call_id) names the call itself,
    whose own earlier hold (a repeated authorisation) does not count against
    it; `stage` is the stage the gateway named (Service-Type), if it did."""
    cur.execute(CALL_LOOKUP, {
        "number": number, "pin_hash": pin_hash, "called": called or "", "caller": caller,
        "caller_number": caller_number, "gateway_id": gateway_id, "conf_id": conf_id,
        "call_id": call_id, "stage": stage, "at": at or datetime.now(timezone.utc)})
    row = cur.fetchone()
    if row is None:
        return None
    refusal, until = row.pop("refusal"), row.pop("refused_until")
    if refusal is not None:
        return CallRefused(refusal, until)
    price = loads(row["rating"]) if row["rating"] else None
    row["rating"] = context_from_json(price)
    return CallCard(price=price, **row)


def add(cur, key: bytes, number: str, pin: str, balance, currency: str,
        category: str = "standard", language: str = "en",
        expires_at: datetime | None = None, check_digit: str = "luhn",
        tariff: str | None = None, operator: str | None = None) -> dict:
    """Issue one card; its opening balance is the card's first ledger entry.

    The card is in its category's currency; tariff, if given, is its own
    tariff (in that currency too). Every problem is reported at once."""
    problems = []
    problem = card_number_problem(number or "", check_digit)
    if problem:
        problems.append(problem)
    problems.append(pin_problem(pin))
    bad_currency = currencies.currency_problem(currency)
    if bad_currency:
        problems.append(f"currency: {bad_currency}")
    problems.append(categories.money_problem("balance", balance, currency))
    problems.append(language_problem(language))
    problems.append(_category_problem(cur, category, None if bad_currency else currency))
    tariff_id = None
    if tariff:
        tariff_id, problem = card_tariffs.check(cur, tariff, None if bad_currency else currency,
                                                f"card {number}")
        problems.append(problem)
    problems = [p for p in problems if p]
    if problems:
        raise CardError("; ".join(problems))
    cur.execute("SELECT 1 FROM kondge.card WHERE number = %s", (number,))
    if cur.fetchone():
        raise CardError(f"card {number} exists already")
    amount = operator_amount(balance)
    cur.execute(
        """INSERT INTO kondge.card (number, pin_hash, currency, category, language,
                                    expires_at, tariff_id)
           VALUES (%(number)s, %(hash)s, %(currency)s, %(category)s, %(language)s,
                   %(expires)s, %(tariff_id)s)
           RETURNING id""",
        {"number": number, "hash": pin_hash(key, number, pin), "currency": currency,
         "category": category, "language": language, "expires": expires_at,
         "tariff_id": tariff_id})
    ledger.post(cur, "issue", [(cur.fetchone()["id"], amount, f"issue:{number}")],
                "card issued")
    audit.record(cur, audit.operator_name(operator), "add card", 1, {"numbers": [number]},
                 {"balance": amount, "currency": currency, "category": category,
                  "tariff": tariff})
    return show(cur, number)


def _category_problem(cur, name: str, currency: str | None) -> str | None:
    """Why a card in currency cannot go into category name, or None. The
    category is locked FOR SHARE: its currency and billing hold until commit."""
    found = categories.show(cur, name, share=True)
    if found is None:
        return f"category: no category {name}; see 'kondge categories list'"
    if found["kind"] != "card":
        return f"category: {name} is for recharge vouchers, not calling cards"
    if currency is not None and found["currency"] != currency:
        return (f"category: {name} is in {found['currency']}, the card in {currency}; a card "
                f"is in its category's currency: give --category of a category in {currency} "
                "(see 'kondge categories list'; add one with 'kondge categories add')")
    return None


def show(cur, number: str) -> dict | None:
    cur.execute(
        """SELECT c.number, c.balance, c.currency, c.status, c.category, c.language,
                  c.expires_at, c.created_at, c.serial, b.name AS batch, c.activated_at,
                  c.first_used_at, t.name AS tariff, ct.name AS category_tariff,
                  (SELECT count(*) FROM kondge.cdr WHERE card_id = c.id) AS calls,
                  (SELECT coalesce(sum(amount), 0) FROM kondge.ledger_entry
                    WHERE card_id = c.id) AS ledger_sum
             FROM kondge.card c LEFT JOIN kondge.batch b ON b.id = c.batch_id
             LEFT JOIN kondge.tariff t ON t.id = c.tariff_id
             LEFT JOIN kondge.category cat ON cat.name = c.category
             LEFT JOIN kondge.tariff ct ON ct.id = cat.tariff_id
            WHERE c.number = %s""", (number,))
    return cur.fetchone()


# Value left on an expired card leaves it through the ledger: one 'expiry'
# entry per card and expiry date, so running it again changes nothing.
EXPIRED = """
SELECT id, balance, currency, extract(epoch FROM expires_at)::bigint AS expired_at
  FROM kondge.card WHERE expires_at <= %(now)s AND balance > 0
 ORDER BY id FOR UPDATE
"""


def expire(cur, operator: str, now: datetime | None = None) -> dict:
    """Move the remaining balance of every expired card to zero."""
    cur.execute("SELECT coalesce(%s, now()) AS now", (now,))
    now = cur.fetchone()["now"]
    cur.execute(EXPIRED, {"now": now})
    due = {row["id"]: row for row in cur.fetchall()}
    posted = ledger.post(cur, "expiry", [
        (c["id"], -c["balance"], f"expiry:{c['id']}:{c['expired_at']}") for c in due.values()],
        "value expired with the card")
    totals: dict[str, Decimal] = {}
    rows = [dict(card_id=p["card_id"], expired=-p["amount"],
                 currency=due[p["card_id"]]["currency"]) for p in posted]
    for row in rows:
        totals[row["currency"]] = totals.get(row["currency"], ZERO) + row["expired"]
    audit.record(cur, operator, "expire", len(rows), {"expired_by": now.isoformat()},
                 {"value": {k: str(v) for k, v in totals.items()}})
    return {"cards": len(rows), "value": totals, "as_of": now}
