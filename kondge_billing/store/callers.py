"""Callers (ANI) bound to cards, and access-number policies. Owns their SQL.

An operator's change is one of the operators' functions (op_callers_*,
op_access_number_*, through audit.change), which makes it and writes its
audit record at once.
"""

import json
import re

from . import audit
from ..identifiers import LANGUAGE
from ..rating.numbers import NumberFormat, normalise

LOGINS = ("card", "caller", "both")


class CallerError(ValueError):
    pass


def _international(raw: str, fmt: NumberFormat) -> str:
    number = normalise(raw, fmt)
    if number is None:
        raise CallerError(f"{raw!r} is not a phone number")
    return number


def bind(cur, card_number: str, raw_numbers: list[str], fmt: NumberFormat = NumberFormat(),
         operator: str | None = None) -> list[str]:
    """Bind caller numbers to a card; a number bound elsewhere is refused.
    Returns the numbers (international form)."""
    numbers = [_international(n, fmt) for n in raw_numbers]
    audit.change(cur, CallerError, "SELECT * FROM kondge.op_callers_bind(%s, %s, %s)",
                 (audit.operator_name(operator), card_number, numbers))
    return numbers


def auto_bind(cur, card_id: int, number: str, gateway_id: int, call_id: str) -> bool:
    """The call path's binding after a card login (kondge.radius_auto_bind):
    the login of call `call_id` on the gateway must have proven the card."""
    cur.execute("SELECT kondge.radius_auto_bind(%s, %s, %s, %s) AS bound",
                (card_id, number, gateway_id, call_id))
    return cur.fetchone()["bound"]


def unbind(cur, raw_numbers: list[str], fmt: NumberFormat = NumberFormat(),
           operator: str | None = None) -> int:
    """Unbind caller numbers; refused if none of them was bound."""
    numbers = [_international(n, fmt) for n in raw_numbers]
    return audit.change(cur, CallerError, "SELECT kondge.op_callers_unbind(%s, %s) AS n",
                        (audit.operator_name(operator), numbers))[0]["n"]


def list_callers(cur, card_number: str | None = None) -> list[dict]:
    cur.execute("""SELECT l.number AS caller, c.number AS card, l.auto_bound, l.created_at
                     FROM kondge.caller l JOIN kondge.card c ON c.id = l.card_id
                    WHERE %(card)s::text IS NULL OR c.number = %(card)s
                    ORDER BY c.number, l.number""", {"card": card_number})
    return cur.fetchall()


def _check_access(number, login, language):
    problems = []
    if not re.match(r"^[0-9]{1,32}\Z", number or ""):
        problems.append("number: the digits the caller dials, as the gateway sends them")
    if login is not None and login not in LOGINS:
        problems.append(f"login: one of {', '.join(LOGINS)}")
    if language is not None and not LANGUAGE.match(language):
        problems.append("language: a two- or three-letter code such as en")
    if problems:
        raise CallerError("; ".join(problems))


def add_access_number(cur, number, description="", login="both", language=None,
                      prompt_id=None, operator: str | None = None) -> dict:
    _check_access(number, login, language)
    return audit.change(
        cur, CallerError, "SELECT * FROM kondge.op_access_number_add(%s, %s, %s, %s, %s, %s)",
        (audit.operator_name(operator), number, description, login, language, prompt_id))[0]


def modify_access_number(cur, number, operator: str | None = None, **changes) -> dict:
    _check_access(number, changes.get("login"), changes.get("language"))
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise CallerError("nothing to change")
    return audit.change(cur, CallerError,
                        "SELECT * FROM kondge.op_access_number_modify(%s, %s, %s)",
                        (audit.operator_name(operator), number, json.dumps(changes)))[0]


def list_access_numbers(cur) -> list[dict]:
    cur.execute("SELECT * FROM kondge.access_number ORDER BY number")
    return cur.fetchall()
