"""Callers (ANI) bound to cards, and access-number policies. Owns their SQL."""

import re

from .numbers import NumberFormat, normalise

LOGINS = ("card", "caller", "both")
from .identifiers import LANGUAGE


class CallerError(ValueError):
    pass


def _international(raw: str, fmt: NumberFormat) -> str:
    number = normalise(raw, fmt)
    if number is None:
        raise CallerError(f"{raw!r} is not a phone number")
    return number


def bind(cur, card_number: str, raw_numbers: list[str], fmt: NumberFormat = NumberFormat(),
         auto: bool = False) -> list[str]:
    """Bind caller numbers to a card; a number bound elsewhere is refused."""
    numbers = [_international(n, fmt) for n in raw_numbers]
    cur.execute("SELECT id FROM kondge.card WHERE number = %s FOR UPDATE", (card_number,))
    card = cur.fetchone()
    if card is None:
        raise CallerError(f"no card {card_number}")
    cur.execute("""SELECT l.number, c.number AS card FROM kondge.caller l
                     JOIN kondge.card c ON c.id = l.card_id
                    WHERE l.number = ANY(%s) AND l.card_id <> %s""", (numbers, card["id"]))
    taken = cur.fetchall()
    if taken:
        raise CallerError("; ".join(f"{t['number']} is bound to card {t['card']}; unbind it first"
                                    for t in taken))
    cur.executemany("""INSERT INTO kondge.caller (number, card_id, auto_bound) VALUES (%s, %s, %s)
                       ON CONFLICT (number) DO NOTHING""",
                    [(n, card["id"], auto) for n in numbers])
    return numbers


def auto_bind(cur, card_id: int, number: str, gateway_id: int, call_id: str) -> bool:
    """The call path's binding after a card login (kondge.radius_auto_bind):
    the login of call `call_id` on the gateway must have proven the card."""
    cur.execute("SELECT kondge.radius_auto_bind(%s, %s, %s, %s) AS bound",
                (card_id, number, gateway_id, call_id))
    return cur.fetchone()["bound"]


def unbind(cur, raw_numbers: list[str], fmt: NumberFormat = NumberFormat()) -> int:
    numbers = [_international(n, fmt) for n in raw_numbers]
    cur.execute("DELETE FROM kondge.caller WHERE number = ANY(%s)", (numbers,))
    return cur.rowcount


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
                      prompt_id=None) -> dict:
    _check_access(number, login, language)
    cur.execute("""INSERT INTO kondge.access_number (number, description, login, language,
                                                    prompt_id)
                   VALUES (%s, %s, %s, %s, %s) ON CONFLICT (number) DO NOTHING
                   RETURNING *""", (number, description, login, language, prompt_id))
    row = cur.fetchone()
    if row is None:
        raise CallerError(f"access number {number} exists already; use 'modify'")
    return row


def modify_access_number(cur, number, **changes) -> dict:
    _check_access(number, changes.get("login"), changes.get("language"))
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise CallerError("nothing to change")
    sets = ", ".join(f"{k} = %({k})s" for k in changes)
    cur.execute(f"UPDATE kondge.access_number SET {sets} WHERE number = %(_n)s RETURNING *",
                dict(changes, _n=number))
    row = cur.fetchone()
    if row is None:
        raise CallerError(f"no access number {number}; add it first")
    return row


def list_access_numbers(cur) -> list[dict]:
    cur.execute("SELECT * FROM kondge.access_number ORDER BY number")
    return cur.fetchall()
