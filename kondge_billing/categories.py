"""Card categories (products): what a card is sold as. Owns the category table's SQL.

A category gives its cards a face value and currency, a validity (none; a
fixed date; N days after first use; N days after issue), a prompt
language, the most simultaneous calls, prepaid or postpaid with a credit
limit, and the PIN length. Its kind says whether it issues calling cards or
recharge vouchers.
"""

import re
from datetime import datetime

from .money import MoneyError, to_decimal

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
VALIDITIES = ("none", "fixed", "after-first-use", "after-issue")
BILLINGS = ("prepaid", "postpaid")
KINDS = ("card", "voucher")
FIELDS = ("description", "face_value", "currency", "validity", "valid_until", "valid_days",
          "language", "max_calls", "billing", "credit_limit", "pin_length", "kind")
COLUMNS = ("name",) + FIELDS


class CategoryError(ValueError):
    pass


def _money_problem(label, value):
    try:
        return f"{label}: must not be negative" if to_decimal(value) < 0 else None
    except MoneyError as exc:
        return f"{label}: {exc}"


def _int_problem(label, value, low, high):
    if not isinstance(value, int) or not low <= value <= high:
        return f"{label}: a whole number from {low} to {high}"
    return None


def problems(c: dict) -> list[str]:
    """Everything wrong with a complete category, all at once."""
    found = [
        None if NAME.match(c["name"] or "") else
        "name: letters, digits, '_', '.', '-', at most 32, e.g. usd-10",
        _money_problem("face value", c["face_value"]),
        None if re.fullmatch(r"[A-Z]{3}", c["currency"] or "") else
        "currency: a three-letter ISO 4217 code such as USD",
        None if c["validity"] in VALIDITIES else f"validity: one of {', '.join(VALIDITIES)}",
        None if re.fullmatch(r"[a-z]{2,3}", c["language"] or "") else
        "language: a two- or three-letter code such as en",
        _int_problem("max calls", c["max_calls"], 1, 1000),
        None if c["billing"] in BILLINGS else "billing: prepaid or postpaid",
        _money_problem("credit limit", c["credit_limit"]),
        _int_problem("PIN length", c["pin_length"], 4, 12),
        None if c["kind"] in KINDS else "kind: card or voucher",
    ]
    if c["validity"] == "fixed" and not isinstance(c["valid_until"], datetime):
        found.append("valid until: a fixed validity needs --valid-until DATE")
    if c["validity"] in ("after-first-use", "after-issue"):
        found.append(_int_problem("valid days", c["valid_days"], 1, 36500)
                     if c["valid_days"] is not None else
                     f"valid days: validity {c['validity']} needs --valid-days N")
    if c["billing"] == "prepaid" and not _money_problem("x", c["credit_limit"]) \
            and to_decimal(c["credit_limit"]) != 0:
        found.append("credit limit: only a postpaid category has one")
    if c["kind"] == "voucher" and not _money_problem("x", c["face_value"]) \
            and to_decimal(c["face_value"]) <= 0:
        found.append("face value: a voucher category needs a face value above zero")
    return [p for p in found if p]


DEFAULTS = {"description": "", "face_value": "0", "currency": "USD", "validity": "none",
            "valid_until": None, "valid_days": None, "language": "en", "max_calls": 1,
            "billing": "prepaid", "credit_limit": "0", "pin_length": 4, "kind": "card"}


def _checked(values: dict) -> dict:
    found = problems(values)
    if found:
        raise CategoryError("; ".join(found))
    return dict(values, face_value=to_decimal(values["face_value"]),
                credit_limit=to_decimal(values["credit_limit"]))


def add(cur, name: str, **fields) -> dict:
    values = _checked({**DEFAULTS, "name": name,
                       **{k: v for k, v in fields.items() if v is not None}})
    if show(cur, name):
        raise CategoryError(f"category {name} exists already; change it with "
                            "'kondge categories modify'")
    cur.execute(f"INSERT INTO kondge.category ({', '.join(COLUMNS)}) "
                f"VALUES ({', '.join('%(' + c + ')s' for c in COLUMNS)})", values)
    return show(cur, name)


def modify(cur, name: str, **fields) -> dict:
    current = show(cur, name, lock=True)
    if current is None:
        raise CategoryError(f"no category {name}; see 'kondge categories list'")
    values = _checked({**current, **{k: v for k, v in fields.items() if v is not None}})
    if values["kind"] != current["kind"] and in_use(cur, name):
        raise CategoryError(f"category {name} has cards or vouchers: its kind cannot change")
    cur.execute(f"UPDATE kondge.category SET {', '.join(f'{c} = %({c})s' for c in FIELDS)} "
                "WHERE name = %(name)s", values)
    return show(cur, name)


def in_use(cur, name: str) -> bool:
    cur.execute("""SELECT EXISTS (SELECT 1 FROM kondge.card WHERE category = %(n)s)
                       OR EXISTS (SELECT 1 FROM kondge.voucher WHERE category = %(n)s) AS used""",
                {"n": name})
    return cur.fetchone()["used"]


def show(cur, name: str, lock: bool = False) -> dict | None:
    cur.execute(f"SELECT {', '.join(COLUMNS)} FROM kondge.category WHERE name = %s"
                + (" FOR UPDATE" if lock else ""), (name,))
    return cur.fetchone()


def all_categories(cur) -> list[dict]:
    cur.execute(f"SELECT {', '.join(COLUMNS)} FROM kondge.category ORDER BY name")
    return cur.fetchall()
