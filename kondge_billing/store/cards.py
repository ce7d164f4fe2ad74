"""Cards: issue, look up, show, correct. Owns the card table's SQL.

Every change is one of the operators' functions (sql/functions/op_*.sql,
through audit.change): it checks the change again, moves money only
through the ledger and writes the audit record in the same transaction.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from . import audit, card_tariffs, categories, prices
from .prepared import Prepared
from ..rating import currencies
from ..rating.money import ZERO, Money, MoneyError, operator_amount
from .pins import pin_hash
from ..identifiers import card_number_problem, language_problem, pin_problem
from ..rating.engine import RatingContext


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
    price: dict                         # ...and its ids (store/prices.py; empty: none)
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
# came in on and its policy, the card's bound callers, and at stage 2 which
# price of the card's tariff the destination gets (its ids: the rating itself
# is kept by the process, store/prices.py).
CALL_LOOKUP = Prepared("kondge_radius_card", """
SELECT * FROM kondge.radius_card(%(number)s, %(pin_hash)s, %(caller_number)s, %(called)s,
                                 %(caller)s, %(gateway_id)s, %(call_id)s, %(conf_id)s,
                                 %(stage)s, %(at)s)
""")


def for_call(cur, number: str | None, called: str | None, caller: str | None = None,
             gateway_id: int | None = None, conf_id: str | None = None,
             call_id: str = "", at: datetime | None = None,
             caller_number: str | None = None, pin_hash: str | None = None,
             stage: str | None = None, gateway_name: str | None = None
             ) -> CallCard | CallRefused | None:
    """The card for a call, by its number and PIN (CallRefused when the
    database refuses them) or (number None) by the caller number bound to it
    (None: bound to no card). (gateway_id, call_id) names the call itself,
    whose own earlier hold (a repeated authorisation) does not count against
    it; `stage` is the stage the gateway named (Service-Type), if it did;
    `gateway_name` is the gateway's name, a fact of the call's rating."""
    CALL_LOOKUP.run(cur, {
        "number": number, "pin_hash": pin_hash, "called": called or "", "caller": caller,
        "caller_number": caller_number, "gateway_id": gateway_id, "conf_id": conf_id,
        "call_id": call_id, "stage": stage, "at": at or datetime.now(timezone.utc)})
    row = cur.fetchone()
    if row is None:
        return None
    refusal, until = row.pop("refusal"), row.pop("refused_until")
    if refusal is not None:
        return CallRefused(refusal, until)
    rating = prices.from_row(cur, row, category=row["category"],
                             access_number=row["access_number"], caller=caller,
                             gateway=gateway_name)
    return CallCard(rating=rating.context, price=rating.ids, **row)


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
    audit.change(cur, CardError, "SELECT kondge.op_card_add(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                 (audit.operator_name(operator), number, pin_hash(key, number, pin),
                  operator_amount(balance), currency, category, language, expires_at, tariff))
    return show(cur, number)


def _category_problem(cur, name: str, currency: str | None) -> str | None:
    """Why a card in currency cannot go into category name, or None
    (kondge.op_card_add checks it again with the category locked)."""
    found = categories.show(cur, name)
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


def expire(cur, operator: str | None = None, now: datetime | None = None) -> dict:
    """Move the remaining balance of every card expired by now (default: the
    database's now; never later) to zero, as 'expiry' ledger entries (once
    per card and expiry date: running it again changes nothing)."""
    rows = audit.change(cur, CardError, "SELECT * FROM kondge.op_expire(%s, %s)",
                        (audit.operator_name(operator), now))
    totals: dict[str, Decimal] = {}
    for row in rows:
        totals[row["currency"]] = totals.get(row["currency"], ZERO) + row["expired"]
    cur.execute("SELECT coalesce(%s, now()) AS as_of", (now,))
    return {"cards": len(rows), "value": totals, "as_of": cur.fetchone()["as_of"]}


# --- corrections: the operators' ways to change one card -----------------------------

KINDS = ("adjustment", "refund")


def _amount(label: str, value, currency: str, positive: bool | None) -> Decimal:
    """value as an amount in currency; positive None: either sign, not zero."""
    try:
        amount = operator_amount(value)
    except MoneyError as exc:
        raise CardError(f"{label}: {exc}") from None
    problem = currencies.currency_problem(currency) or currencies.minor_unit_problem(
        amount, currency)
    if problem:
        raise CardError(f"{label}: {problem}")
    if (positive and amount <= 0) or (positive is None and amount == 0):
        raise CardError(f"{label}: " + ("above zero" if positive else "other than zero"))
    return amount


def adjust(cur, number: str, amount, currency: str, reason: str, operation_id: str,
           kind: str = "adjustment", operator: str | None = None) -> dict:
    """Correct a card's balance by amount (a refund: a credit), once per
    operation id; a debit never takes more than the card has available."""
    if kind not in KINDS:
        raise CardError(f"a correction is one of {', '.join(KINDS)}")
    value = _amount("--amount", amount, currency, True if kind == "refund" else None)
    row = audit.change(cur, CardError, "SELECT * FROM kondge.op_adjust(%s, %s, %s, %s, %s, %s, %s)",
                       (audit.operator_name(operator), number, value, currency, kind, reason,
                        operation_id))[0]
    return {"card": number, "kind": kind, "amount": value, "currency": currency,
            "posted": row["posted"] is not None, "balance": row["balance"],
            "operation_id": operation_id}


def transfer(cur, source: str, target: str, currency: str, reason: str, operation_id: str,
             amount=None, operator: str | None = None) -> dict:
    """Move amount (None: all the source card has available) from one card
    to another of the same currency, once per operation id."""
    value = None if amount is None else _amount("--amount", amount, currency, True)
    row = audit.change(
        cur, CardError, "SELECT * FROM kondge.op_transfer(%s, %s, %s, %s, %s, %s, %s)",
        (audit.operator_name(operator), source, target, value, currency, reason,
         operation_id))[0]
    return {"from": source, "to": target, "currency": currency, "moved": row["moved"],
            "posted": row["moved"] is not None, "from_balance": row["from_balance"],
            "to_balance": row["to_balance"], "operation_id": operation_id}


def set_pin(cur, key: bytes, number: str, pin: str, operator: str | None = None) -> dict:
    """Give a card a new PIN (stored only as its keyed hash)."""
    problem = pin_problem(pin)
    if problem:
        raise CardError(problem)
    audit.change(cur, CardError, "SELECT kondge.op_set_pin(%s, %s, %s)",
                 (audit.operator_name(operator), number, pin_hash(key, number, pin)))
    return {"card": number, "pin": "changed"}


#: modify(): the card's tariff taken away
NO_TARIFF = ""
#: modify(): the card never expires
NO_EXPIRY = "never"


def modify(cur, number: str, operator: str | None = None, language: str | None = None,
           expires_at=None, tariff: str | None = None) -> dict:
    """Change a card's language, expiry (NO_EXPIRY: none) or own tariff
    (NO_TARIFF: none); None leaves a field as it is."""
    changes = {}
    if language is not None:
        problem = language_problem(language)
        if problem:
            raise CardError(problem)
        changes["language"] = language
    if expires_at is not None:
        changes["expires_at"] = None if expires_at == NO_EXPIRY else expires_at.isoformat()
    if tariff is not None:
        changes["tariff"] = tariff or None
    if not changes:
        raise CardError("nothing to change: give --language, --expires, --no-expiry, "
                        "--tariff or --no-tariff")
    audit.change(cur, CardError, "SELECT kondge.op_card_modify(%s, %s, %s)",
                 (audit.operator_name(operator), number, json.dumps(changes)))
    return show(cur, number)
