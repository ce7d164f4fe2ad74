"""Money moves through the ledger: kondge.post_ledger (sql/functions/post_ledger.sql)
is the one writer of ledger entries and card balances, here and in the call path.

A movement is (card id, amount, key); the key makes it unique, so posting it
again (a retried command, a replayed packet) moves nothing.
"""

from decimal import Decimal


def post(cur, kind: str, movements, note: str = "") -> list[dict]:
    """Post the movements [(card_id, amount, key)] of one kind at once; return
    those posted now ({card_id, amount, balance_after}), not those posted before."""
    movements = list(movements)
    if not movements:
        return []
    for _card, amount, _key in movements:
        if not isinstance(amount, Decimal):
            raise TypeError(f"a ledger amount is a Decimal, not {type(amount).__name__}")
    cur.execute("SELECT * FROM kondge.post_ledger(%s::bigint[], %s::numeric[], %s, %s::text[], %s)",
                ([m[0] for m in movements], [m[1] for m in movements], kind,
                 [m[2] for m in movements], note))
    return cur.fetchall()
