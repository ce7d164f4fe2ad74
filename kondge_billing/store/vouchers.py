"""Recharge vouchers: a voucher's value moves to a calling card, once. Owns voucher SQL.

The refill is kondge.op_refill (sql/functions/op_refill.sql), in one
transaction that locks the voucher row first and the card row second: of
two refills of one voucher racing, the second waits for the first and then
finds the voucher used. The ledger key 'voucher:NUMBER' makes a second
credit impossible even so. The PIN is compared in the database with the
keyed hash made here: nobody reads a voucher's PIN hash.
"""

from . import audit
from .pins import pin_hash


class RefillError(ValueError):
    pass


#: wrong PINs in a row after which a voucher is suspended (op_refill.sql)
MAX_FAILED_ATTEMPTS = 5


def show(cur, number: str) -> dict | None:
    cur.execute("""SELECT v.number, v.serial, v.value, v.currency, v.category, v.status,
                          v.expires_at, v.used_at, c.number AS used_by, b.name AS batch
                     FROM kondge.voucher v
                     LEFT JOIN kondge.card c ON c.id = v.used_by
                     LEFT JOIN kondge.batch b ON b.id = v.batch_id
                    WHERE v.number = %s""", (number,))
    return cur.fetchone()


def _refused(out: dict, card: str, voucher: str) -> str:
    """What to tell the operator for op_refill's refusal `out`."""
    outcome = out["outcome"]
    if outcome == "wrong-pin":
        refused = f"voucher {voucher}: no such voucher, or a wrong PIN"
        if out["failed_attempts"] >= MAX_FAILED_ATTEMPTS:
            refused += f"; after {out['failed_attempts']} wrong PINs it is suspended"
        return refused
    if outcome == "used":
        when = f", on {out['used_at']:%Y-%m-%d %H:%M}" if out["used_at"] else ""
        return f"voucher {voucher} was used already{when}"
    return {
        "no-voucher": f"voucher {voucher}: no such voucher, or a wrong PIN",
        "expired": f"voucher {voucher} expired on {out['expires_at']:%Y-%m-%d}"
                   if out["expires_at"] else f"voucher {voucher} expired",
        "no-card": f"no card {card}",
        "card-cancelled": f"card {card} is cancelled",
        "currency": f"voucher {voucher} is in {out['currency']}, "
                    f"card {card} in {out['card_currency']}",
    }.get(outcome, f"voucher {voucher} is {outcome}")


def refill(cur, key: bytes, card_number: str, voucher_number: str, pin: str,
           operator: str | None = None) -> dict:
    """Move the voucher's value to the card, exactly once.

    A wrong PIN returns {"refused": message} instead of raising, so that the
    caller commits the count of wrong PINs before it refuses."""
    out = audit.change(cur, RefillError, "SELECT * FROM kondge.op_refill(%s, %s, %s, %s)",
                       (audit.operator_name(operator), card_number, voucher_number,
                        pin_hash(key, voucher_number, pin or "")))[0]
    if out["outcome"] == "wrong-pin":
        return {"refused": _refused(out, card_number, voucher_number)}
    if out["outcome"] != "refilled":
        raise RefillError(_refused(out, card_number, voucher_number))
    return {"card": card_number, "voucher": voucher_number, "amount": out["amount"],
            "currency": out["card_currency"], "balance": out["balance"]}
