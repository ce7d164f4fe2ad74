"""Fresh cards for tests that spend money."""

import secrets

from kondge_billing.store import cards
from kondge_billing.identifiers import luhn_valid


def luhn_number(length: int = 12) -> str:
    body = "9" + "".join(secrets.choice("0123456789") for _ in range(length - 2))
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


def new_card(db, pin_key, balance="10.00", pin="1234", **kw) -> str:
    number = luhn_number()
    db.run(lambda cur: cards.add(cur, pin_key, number, pin, balance, "USD", **kw))
    return number
