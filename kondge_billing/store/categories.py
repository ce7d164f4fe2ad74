"""Card categories (products): what a card is sold as. Owns the category table's SQL.

A category gives its cards a face value and currency, a validity (none; a
fixed date; N days after first use; N days after issue), a prompt
language, the most simultaneous calls, prepaid or postpaid with a credit
limit, the PIN length, and the tariff of its cards that have none of their
own. Its kind says whether it issues calling cards or recharge vouchers.

Every change is one of the operators' functions (op_category_add,
op_category_modify, through audit.change), which checks it again and writes
the audit record with each field's old and new value.

A card is in its category's currency and keeps its currency and billing
model for life: a category with cards changes neither (nor, with vouchers,
its currency), and its tariff prices in its currency.
"""

import json
from datetime import datetime

from . import audit, card_tariffs
from ..rating import currencies
from ..identifiers import CATEGORY_NAME, LANGUAGE
from ..rating.money import MoneyError, operator_amount

NAME = CATEGORY_NAME
VALIDITIES = ("none", "fixed", "after-first-use", "after-issue")
BILLINGS = ("prepaid", "postpaid")
KINDS = ("card", "voucher")
FIELDS = ("description", "face_value", "currency", "validity", "valid_until", "valid_days",
          "language", "max_calls", "billing", "credit_limit", "pin_length", "kind",
          "max_call_seconds", "auto_bind", "max_callers")
COLUMNS = ("name",) + FIELDS
#: tariff=NO_TARIFF in modify() takes the category's tariff away
NO_TARIFF = ""


class CategoryError(ValueError):
    pass


def money_problem(label: str, value, currency) -> str | None:
    """What is wrong with value as an amount of a category (or card) in currency."""
    try:
        amount = operator_amount(value)
    except MoneyError as exc:
        return f"{label}: {exc}"
    if amount < 0:
        return f"{label}: must not be negative"
    finer = currencies.minor_unit_problem(amount, currency)
    return f"{label}: {finer}" if finer else None


def _int_problem(label, value, low, high):
    if not isinstance(value, int) or not low <= value <= high:
        return f"{label}: a whole number from {low} to {high}"
    return None


def problems(c: dict) -> list[str]:
    """Everything wrong with a complete category, all at once."""
    found = [
        None if NAME.match(c["name"] or "") else
        "name: letters, digits, '_', '.', '-', at most 32, e.g. usd-10",
        money_problem("face value", c["face_value"], c["currency"]),
        _currency_problem(c["currency"]),
        None if c["validity"] in VALIDITIES else f"validity: one of {', '.join(VALIDITIES)}",
        None if LANGUAGE.match(c["language"] or "") else
        "language: a two- or three-letter code such as en",
        _int_problem("max calls", c["max_calls"], 1, 1000),
        None if c["billing"] in BILLINGS else "billing: prepaid or postpaid",
        money_problem("credit limit", c["credit_limit"], c["currency"]),
        _int_problem("PIN length", c["pin_length"], 4, 12),
        None if c["kind"] in KINDS else "kind: card or voucher",
        None if c["max_call_seconds"] is None else
        _int_problem("max call seconds", c["max_call_seconds"], 1, 86400),
        None if isinstance(c["auto_bind"], bool) else "auto bind: true or false",
        _int_problem("max callers", c["max_callers"], 0, 1000),
    ]
    if c["validity"] == "fixed" and not isinstance(c["valid_until"], datetime):
        found.append("valid until: a fixed validity needs --valid-until DATE")
    if c["validity"] in ("after-first-use", "after-issue"):
        found.append(_int_problem("valid days", c["valid_days"], 1, 36500)
                     if c["valid_days"] is not None else
                     f"valid days: validity {c['validity']} needs --valid-days N")
    if c["billing"] == "prepaid" and _amount(c["credit_limit"]) not in (None, 0):
        found.append("credit limit: only a postpaid category has one")
    if c["kind"] == "voucher" and _amount(c["face_value"]) == 0:
        found.append("face value: a voucher category needs a face value above zero")
    return [p for p in found if p]


def _currency_problem(code) -> str | None:
    found = currencies.currency_problem(code)
    return f"currency: {found}" if found else None


def _amount(value):
    """value as an amount, or None if it is none (money_problem says why)."""
    try:
        return operator_amount(value)
    except MoneyError:
        return None


DEFAULTS = {"description": "", "face_value": "0", "currency": "USD", "validity": "none",
            "valid_until": None, "valid_days": None, "language": "en", "max_calls": 1,
            "billing": "prepaid", "credit_limit": "0", "pin_length": 4, "kind": "card",
            "max_call_seconds": None, "auto_bind": False, "max_callers": 3}
#: max_call_seconds=NO_CAP: no cap of its own on one call (the server's only)
NO_CAP = 0


def _checked(cur, values: dict, tariff: str | None) -> dict:
    """values, complete, with face value and credit limit as stored and
    "tariff" the tariff's name (or None); every problem at once as a
    CategoryError. tariff: a tariff's name, NO_TARIFF, or None to keep the
    one values has."""
    if values["max_call_seconds"] == NO_CAP:
        values = dict(values, max_call_seconds=None)
    found = problems(values)
    name = values.get("tariff") if tariff is None else (tariff or None)
    if name is not None:
        currency = None if _currency_problem(values["currency"]) else values["currency"]
        found.append(card_tariffs.check(cur, name, currency, f"category {values['name']}")[1])
        if values["kind"] == "voucher":
            found.append("tariff: a voucher category rates no calls; it has no tariff")
    found = [p for p in found if p]
    if found:
        raise CategoryError("; ".join(found))
    return dict(values, face_value=operator_amount(values["face_value"]),
                credit_limit=operator_amount(values["credit_limit"]), tariff=name)


def _given(fields: dict) -> dict:
    return {k: v for k, v in fields.items() if v is not None and k in FIELDS}


def _json(values: dict, keys) -> str:
    """The fields named by keys, as the category functions read them."""
    return json.dumps({k: values[k] for k in keys}, default=str)


def add(cur, name: str, operator: str | None = None, tariff: str | None = None,
        **fields) -> dict:
    """A new category; tariff names the tariff of its cards that have none."""
    values = _checked(cur, {**DEFAULTS, "name": name, **_given(fields)}, tariff or None)
    if show(cur, name):
        raise CategoryError(f"category {name} exists already; change it with "
                            "'kondge categories modify'")
    audit.change(cur, CategoryError, "SELECT kondge.op_category_add(%s, %s, %s)",
                 (audit.operator_name(operator), name, _json(values, FIELDS + ("tariff",))))
    return show(cur, name)


def modify(cur, name: str, operator: str | None = None, tariff: str | None = None,
           **fields) -> dict:
    """Change the fields given (None: unchanged); tariff NO_TARIFF takes the
    tariff away. A category with cards keeps its currency and billing model."""
    current = show(cur, name)
    if current is None:
        raise CategoryError(f"no category {name}; see 'kondge categories list'")
    given = _given(fields)
    values = _checked(cur, {**current, **given}, tariff)
    members = _members(cur, name)
    if values["kind"] != current["kind"] and any(members.values()):
        raise CategoryError(f"category {name} has cards or vouchers: its kind cannot change")
    refused = [_fixed_problem(name, what, current[what], values[what], members)
               for what in ("currency", "billing") if values[what] != current[what]]
    refused = [r for r in refused if r]
    if refused:
        raise CategoryError("; ".join(refused))
    audit.change(cur, CategoryError, "SELECT kondge.op_category_modify(%s, %s, %s)",
                 (audit.operator_name(operator), name,
                  _json(values, tuple(given) + (("tariff",) if tariff is not None else ()))))
    return show(cur, name)


def _fixed_problem(name, what, old, new, members) -> str | None:
    """A category's currency (with cards or vouchers) and billing model (with
    cards) stay as they are: its cards and vouchers were sold so."""
    held = [f"{n} {kind}" + ("s" if n != 1 else "") for kind, n in members.items()
            if n and (kind == "card" or what == "currency")]
    if not held:
        return None
    advice = (f"add a category in {new} for new cards ('kondge categories add ... "
              f"--currency {new}')" if what == "currency" else
              f"add a {new} category for new cards ('kondge categories add ... --billing {new}')")
    return (f"category {name} has {' and '.join(held)}: its {what} cannot change from {old} "
            f"to {new} (a card keeps its {what} for life); {advice}")


def _members(cur, name: str) -> dict:
    """{"card": how many, "voucher": how many} in the category."""
    cur.execute("""SELECT (SELECT count(*) FROM kondge.card WHERE category = %(n)s) AS card,
                          (SELECT count(*) FROM kondge.voucher WHERE category = %(n)s) AS voucher""",
                {"n": name})
    return dict(cur.fetchone())


SELECT = (f"SELECT {', '.join('c.' + col for col in COLUMNS)}, t.name AS tariff "
          "FROM kondge.category c LEFT JOIN kondge.tariff t ON t.id = c.tariff_id")


def show(cur, name: str) -> dict | None:
    """The category. (The operators' functions lock it while they change it
    or put cards in it; what is read here is checked again there.)"""
    cur.execute(f"{SELECT} WHERE c.name = %s", (name,))
    return cur.fetchone()


def all_categories(cur) -> list[dict]:
    cur.execute(f"{SELECT} ORDER BY c.name")
    return cur.fetchall()
