"""Recharge vouchers: a voucher's value moves to a calling card, once. Owns voucher SQL.

The refill runs in one transaction that locks the voucher row first and
the card row second: of two refills of one voucher racing, the second waits
for the first and then finds the voucher used. The ledger key
'voucher:NUMBER' makes a second credit impossible even so.
"""

from datetime import datetime

from . import audit, ledger
from .pins import pin_matches


class RefillError(ValueError):
    pass


#: wrong PINs in a row after which a voucher is suspended
MAX_FAILED_ATTEMPTS = 5


def show(cur, number: str) -> dict | None:
    cur.execute("""SELECT v.number, v.serial, v.value, v.currency, v.category, v.status,
                          v.expires_at, v.used_at, c.number AS used_by, b.name AS batch
                     FROM kondge.voucher v
                     LEFT JOIN kondge.card c ON c.id = v.used_by
                     LEFT JOIN kondge.batch b ON b.id = v.batch_id
                    WHERE v.number = %s""", (number,))
    return cur.fetchone()


def _voucher_problem(voucher, key, number, pin, now) -> str | None:
    if voucher is None or not pin_matches(key, number, pin or "", voucher["pin_hash"]):
        return f"voucher {number}: no such voucher, or a wrong PIN"
    if voucher["status"] == "used":
        return f"voucher {number} was used already, on {voucher['used_at']:%Y-%m-%d %H:%M}"
    if voucher["status"] != "active":
        return f"voucher {number} is {voucher['status']}"
    if voucher["expires_at"] is not None and voucher["expires_at"] <= now:
        return f"voucher {number} expired on {voucher['expires_at']:%Y-%m-%d}"
    return None


def _count_wrong_pin(cur, voucher, operator) -> dict:
    """A wrong PIN is counted (and kept: the caller commits, then refuses)."""
    attempts = voucher["failed_attempts"] + 1
    locked = attempts >= MAX_FAILED_ATTEMPTS
    cur.execute("""UPDATE kondge.voucher
                      SET failed_attempts = %s,
                          status = CASE WHEN %s THEN 'suspended' ELSE status END
                    WHERE id = %s""", (attempts, locked, voucher["id"]))
    refused = f"voucher {voucher['number']}: no such voucher, or a wrong PIN"
    if locked:
        audit.record(cur, operator, "suspend", 1, {"voucher": voucher["number"]},
                     {"reason": f"{attempts} wrong PINs"})
        refused += f"; after {attempts} wrong PINs it is suspended"
    return {"refused": refused}


def refill(cur, key: bytes, card_number: str, voucher_number: str, pin: str,
           operator: str) -> dict:
    """Move the voucher's value to the card, exactly once.

    A wrong PIN returns {"refused": message} instead of raising, so that the
    caller commits the count of wrong PINs before it refuses."""
    cur.execute("SELECT now() AS now")
    now: datetime = cur.fetchone()["now"]
    cur.execute("SELECT * FROM kondge.voucher WHERE number = %s FOR UPDATE", (voucher_number,))
    voucher = cur.fetchone()
    if (voucher is not None and voucher["status"] == "active"
            and not pin_matches(key, voucher_number, pin or "", voucher["pin_hash"])):
        return _count_wrong_pin(cur, voucher, operator)
    problem = _voucher_problem(voucher, key, voucher_number, pin, now)
    if problem:
        raise RefillError(problem)
    cur.execute("""SELECT id, balance, status, currency FROM kondge.card
                    WHERE number = %s FOR UPDATE""", (card_number,))
    card = cur.fetchone()
    if card is None:
        raise RefillError(f"no card {card_number}")
    if card["status"] == "cancelled":
        raise RefillError(f"card {card_number} is cancelled")
    if card["currency"] != voucher["currency"]:
        raise RefillError(f"voucher {voucher_number} is in {voucher['currency']}, "
                          f"card {card_number} in {card['currency']}")
    posted = ledger.post(cur, "refill", [(card["id"], voucher["value"],
                                          f"voucher:{voucher_number}")],
                         f"voucher {voucher_number} serial {voucher['serial']}")
    if not posted:
        raise RefillError(f"voucher {voucher_number} was used already")
    balance = posted[0]["balance_after"]
    cur.execute("UPDATE kondge.voucher SET status = 'used', used_at = now(), used_by = %s, "
                "failed_attempts = 0 WHERE id = %s", (card["id"], voucher["id"]))
    audit.record(cur, operator, "refill", 1, {"card": card_number, "voucher": voucher_number},
                 {"amount": voucher["value"], "currency": voucher["currency"]})
    return {"card": card_number, "voucher": voucher_number, "amount": voucher["value"],
            "currency": card["currency"], "balance": balance}
