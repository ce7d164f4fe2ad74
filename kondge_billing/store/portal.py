"""The card holders' web portal: what a logged-in card holder may see and
do. Owns the SQL of the web_* functions (sql/functions/web_*.sql); the web
application (kondge_billing/web) calls these and nothing else.

Every function but login takes the session token the database issued at
login; the database answers for the one card that token proves, or with
nothing when it proves none (`NotLoggedIn`). The web process connects as
kondge_web, which may run these functions and nothing else.
"""

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from .pins import pin_hash


class NotLoggedIn(LookupError):
    """The token proves no card (never issued, logged out or ended)."""


@dataclass(frozen=True)
class LoginResult:
    token: str | None = None
    #: None, or 'wrong-pin' (also a number that is no card, or a caller
    #: number bound to none), 'card-locked', 'caller-locked', 'client-locked'
    refusal: str | None = None
    until: datetime | None = None


def login(cur, key: bytes, number: str, pin: str, client: str) -> LoginResult:
    """Log in with a card number and PIN from the address `client`."""
    cur.execute("SELECT * FROM kondge.web_login(%s, %s, %s)",
                (number, pin_hash(key, number, pin), client))
    row = cur.fetchone()
    return LoginResult(row["token"], row["refusal"], row["refused_until"])


def login_caller(cur, key: bytes, caller: str, pin: str, client: str) -> LoginResult:
    """Log in with a caller number bound to a card (international form,
    digits only) and the card's PIN, from the address `client`. The card
    number stays in the database: the PIN's keyed hash is made there, so
    the PIN and the key are handed over (sql/functions/web_login_caller.sql).
    A caller number bound to no card is answered as a wrong PIN."""
    if not (caller.isascii() and caller.isdigit() and 4 <= len(caller) <= 20):
        raise ValueError(f"{caller!r} is not a caller number (4 to 20 digits)")
    cur.execute("SELECT * FROM kondge.web_login_caller(%s, %s, %s, %s)",
                (caller, pin, key.decode(), client))
    row = cur.fetchone()
    return LoginResult(row["token"], row["refusal"], row["refused_until"])


def logout(cur, token: str) -> bool:
    cur.execute("SELECT kondge.web_logout(%s) AS gone", (token,))
    return cur.fetchone()["gone"]


def card(cur, token: str) -> dict:
    """The card's summary: balance, held, available, status, validity, language."""
    cur.execute("SELECT * FROM kondge.web_card(%s)", (token,))
    row = cur.fetchone()
    if row is None:
        raise NotLoggedIn()
    return row


def calls(cur, token: str, since: datetime | None = None, until: datetime | None = None,
          limit: int = 20, offset: int = 0) -> tuple[list[dict], int]:
    """A page of the card's calls, newest first, and how many the bounds take.
    Raises NotLoggedIn when the token proves no card (an empty page does not)."""
    cur.execute("SELECT * FROM kondge.web_calls(%s, %s, %s, %s, %s)",
                (token, since, until, limit, offset))
    rows = cur.fetchall()
    if not rows:
        card(cur, token)                 # no call, or no session?
        return [], 0
    return rows, rows[0]["total"]


def movements(cur, token: str, limit: int = 20, offset: int = 0) -> tuple[list[dict], int]:
    """A page of the card's refills and other movements, newest first."""
    cur.execute("SELECT * FROM kondge.web_movements(%s, %s, %s)", (token, limit, offset))
    rows = cur.fetchall()
    if not rows:
        card(cur, token)
        return [], 0
    return rows, rows[0]["total"]


def refill(cur, key: bytes, token: str, client: str, voucher: str, pin: str) -> dict:
    """Refill the card from a voucher: op_refill's outcome ('refilled' with
    amount, currency and balance, or a refusal), or 'client-locked'."""
    cur.execute("SELECT * FROM kondge.web_refill(%s, %s, %s, %s)",
                (token, client, voucher, pin_hash(key, voucher, pin)))
    row = cur.fetchone()
    if row["outcome"] == "no-session":
        raise NotLoggedIn()
    return row


def set_language(cur, token: str, language: str):
    cur.execute("SELECT kondge.web_set_language(%s, %s) AS done", (token, language))
    if not cur.fetchone()["done"]:
        raise NotLoggedIn()


def statement(cur, token: str, start: datetime, end: datetime) -> dict:
    """The card's statement for [start, end), in the form statements.render_pdf draws."""
    from .statements import assemble
    cur.execute("SELECT kondge.web_statement(%s, %s, %s)::text AS st", (token, start, end))
    text = cur.fetchone()["st"]
    if text is None:
        raise NotLoggedIn()
    data = json.loads(text)
    money = ("balance", "credit_limit", "charge", "uncollected", "amount")

    def typed(row: dict) -> dict:
        out = {}
        for name, value in row.items():
            if name in money and value is not None:
                value = Decimal(value)
            elif name.endswith(("_at", "_time")) and value is not None:
                value = datetime.fromisoformat(value)
            out[name] = value
        return out
    return assemble(typed(data["card"]), start, end, Decimal(data["opening"]),
                    Decimal(data["movement"]), [typed(c) for c in data["calls"]],
                    [typed(m) for m in data["movements"]])
