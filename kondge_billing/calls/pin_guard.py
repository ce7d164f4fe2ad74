"""Limits on PIN guessing. Owns the SQL of pin_guard and pin_policy.

The call path counts wrong PINs per card number, caller number and gateway
and refuses a locked one with code 10 (sql/functions/radius_card.sql,
pin_failed.sql); this module writes the limits the service was started
with, lifts locks for operators and forgets counters that ran out.
"""

from ..store import audit
from ..store.cards import CardError
from ..config import PinPolicy
from ..rating.numbers import NumberFormat, normalise

#: the keys an operator may unlock: a card number, a caller number, a gateway
SCOPES = ("card", "caller", "gateway")

#: a number that is no card: its counter is forgotten this long after its
#: last failure (a card's, on its row, stays until its right PIN or an unlock)
NOT_A_CARD_KEPT = "30 days"


def apply_policy(cur, policy: PinPolicy):
    """Make `policy` the database's (at every start of the service)."""
    cur.execute("""UPDATE kondge.pin_policy
                      SET card_tries = %(card_tries)s, card_cooldown = %(card_cooldown)s,
                          caller_tries = %(caller_tries)s, caller_window = %(caller_window)s,
                          gateway_tries = %(gateway_tries)s,
                          gateway_window = %(gateway_window)s""", policy.__dict__)


def card_state(cur, number: str) -> dict:
    """What `kondge cards show` says of a card's PIN: locked until when, the
    wrong PINs in a row since its last right one (or unlock), and its locks
    in a row."""
    cur.execute("""SELECT pin_failures, pin_locks,
                          CASE WHEN pin_locked_until = 'infinity' THEN 'until kondge cards unlock'
                               WHEN pin_locked_until > now() THEN pin_locked_until::text
                          END AS lock
                     FROM kondge.card WHERE number = %s""", (number,))
    row = cur.fetchone() or {"pin_failures": 0, "pin_locks": 0, "lock": None}
    return {"pin_locked": row["lock"] or "no", "wrong_pins_in_a_row": row["pin_failures"],
            "pin_locks_in_a_row": row["pin_locks"]}


def _key(cur, scope: str, given: str) -> str:
    """The counter's key of a card number, a caller number (as dialled
    internationally) or a gateway's name; CardError if there is none."""
    if scope == "card":
        cur.execute("SELECT 1 FROM kondge.card WHERE number = %s", (given,))
        if cur.fetchone() is None:
            raise CardError(f"no card {given}; see 'kondge cards show NUMBER'")
        return given
    if scope == "caller":
        number = normalise(given, NumberFormat())
        if number is None:
            raise CardError(f"{given!r} is not a phone number: give it in international "
                            f"form, e.g. 15551234567")
        return number
    cur.execute("SELECT id FROM kondge.gateway WHERE name = %s AND removed_at IS NULL",
                (given,))
    row = cur.fetchone()
    if row is None:
        raise CardError(f"no gateway {given}; see 'kondge gateways list'")
    return str(row["id"])


def unlock(cur, scope: str, given: str, operator: str) -> dict:
    """Forget the wrong PINs of a card number (a caller number, a gateway by
    name) and lift its lock; audited when there was anything to forget."""
    key = _key(cur, scope, given)
    rows = audit.change(cur, CardError, "SELECT * FROM kondge.op_pin_unlock(%s, %s, %s, %s)",
                        (operator, scope, key, given))
    if not rows:
        return {scope: given, "counted": False, "was_locked": False, "locked_until": None}
    row = rows[0]
    return {scope: given, "counted": True, "was_locked": row["locked_until"] is not None,
            "locked_until": row["locked_until"]}


def forget(cur) -> int:
    """The sweep: drop the counters that no longer count (a caller's, a web
    client's or a gateway's past its window and lock; a number that is no card,
    NOT_A_CARD_KEPT after its last failure, or at once if it became a
    card). Returns how many."""
    cur.execute(f"""
        DELETE FROM kondge.pin_guard g USING kondge.pin_policy p
         WHERE NOT coalesce(g.locked_until > now(), false)
           AND CASE g.scope
                 WHEN 'caller' THEN g.window_start <= now() - make_interval(secs => p.caller_window)
                 WHEN 'web' THEN g.window_start <= now() - make_interval(secs => p.caller_window)
                 WHEN 'gateway' THEN g.window_start <= now() - make_interval(secs => p.gateway_window)
                 ELSE g.last_failure <= now() - interval '{NOT_A_CARD_KEPT}'
                      OR EXISTS (SELECT 1 FROM kondge.card c WHERE c.number = g.key)
               END""")
    return cur.rowcount
