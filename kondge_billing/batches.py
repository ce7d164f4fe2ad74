"""Changes to many cards at once: by batch, serial or number range, list or filter.

Each change is one statement over the selected rows, locked, and one audit
record (operator, time, what, how many). A top-up is a ledger entry per
card whose key holds the operation id, so repeating the command with the
same id credits nobody twice.
"""

import secrets
from dataclasses import asdict, dataclass
from datetime import datetime

from . import audit, categories, currencies
from .identifiers import BATCH_NAME
from .money import MoneyError, operator_amount

TABLES = {"card": "kondge.card", "voucher": "kondge.voucher"}
OPERATION_ID = BATCH_NAME


class BatchError(ValueError):
    pass


@dataclass(frozen=True)
class Selection:
    """Which cards (or vouchers): every criterion given must hold."""

    batch: str | None = None
    serial_from: int | None = None
    serial_to: int | None = None
    number_from: str | None = None
    number_to: str | None = None
    numbers: tuple[str, ...] | None = None
    category: str | None = None
    status: str | None = None
    kind: str = "card"

    def public(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


# Each criterion is a fixed fragment with named parameters; only the ones
# given are joined. No value is ever written into the SQL text.
CRITERIA = {
    "batch": "x.batch_id = (SELECT id FROM kondge.batch WHERE name = %(batch)s)",
    "serial_from": "x.serial >= %(serial_from)s",
    "serial_to": "x.serial <= %(serial_to)s",
    "number_from": "(length(x.number), x.number) >= (length(%(number_from)s), %(number_from)s)",
    "number_to": "(length(x.number), x.number) <= (length(%(number_to)s), %(number_to)s)",
    "numbers": "x.number = ANY(%(numbers)s)",
    "category": "x.category = %(category)s",
    "status": "x.status = %(status)s",
}


def where(selection: Selection) -> tuple[str, dict]:
    params = {k: (list(v) if isinstance(v, tuple) else v)
              for k, v in asdict(selection).items() if v is not None}
    parts = [sql for name, sql in CRITERIA.items() if name in params]
    if not parts:
        raise BatchError("say which cards: --batch, --serials, --numbers, --number-range, "
                         "--category or --status")
    return " AND ".join(parts), params


def _table(selection: Selection) -> str:
    return TABLES[selection.kind]


# status changes: the statuses each may start from, and the new status
STATUS_CHANGES = {
    "activate": (("inactive", "suspended"), "active"),
    "suspend": (("inactive", "active"), "suspended"),
    "cancel": (("inactive", "active", "suspended"), "cancelled"),
}


def count(cur, selection: Selection) -> int:
    sql, params = where(selection)
    cur.execute(f"SELECT count(*) AS n FROM {_table(selection)} x WHERE {sql}", params)
    return cur.fetchone()["n"]


def _apply(cur, operator, action, selection, statement, values=None, details=None) -> dict:
    """Run statement (with {table} and {where}) over the selection; audit it."""
    sql, params = where(selection)
    matched = count(cur, selection)
    cur.execute(statement.format(table=_table(selection), where=sql),
                dict(params, **(values or {})))
    changed = cur.rowcount
    audit.record(cur, operator, action, changed, selection.public(),
                 dict(details or {}, matched=matched, kind=selection.kind))
    return {"action": action, "matched": matched, "changed": changed, **(details or {})}


def change_status(cur, selection: Selection, action: str, operator: str) -> dict:
    starts, new = STATUS_CHANGES[action]
    return _apply(cur, operator, action, selection,
                  """UPDATE {table} x
                        SET status = %(new)s,
                            activated_at = CASE WHEN %(new)s = 'active'
                                                THEN coalesce(x.activated_at, now())
                                                ELSE x.activated_at END
                      WHERE {where} AND x.status = ANY(%(starts)s)""",
                  {"new": new, "starts": list(starts)})


def extend(cur, selection: Selection, operator: str, days: int | None = None,
           until: datetime | None = None) -> dict:
    """Push expiry back by days (cards that have one), or set it to until."""
    if (days is None) == (until is None):
        raise BatchError("extend: give --days N or --until DATE")
    if days is not None and not 1 <= days <= 36500:
        raise BatchError("--days: from 1 to 36500")
    statement = ("UPDATE {table} x SET expires_at = %(until)s "
                 "WHERE {where} AND x.status <> 'cancelled'" if until is not None else
                 "UPDATE {table} x SET expires_at = x.expires_at + make_interval(days => %(days)s) "
                 "WHERE {where} AND x.expires_at IS NOT NULL AND x.status <> 'cancelled'")
    return _apply(cur, operator, "extend", selection, statement,
                  {"days": days, "until": until}, {"days": days, "until": until})


# What the cards (or vouchers) a move would take out of their categories are
# in: currency and billing model, with how many. Their categories are locked
# FOR SHARE, the target too (by the caller): none of them changes currency
# or billing before this transaction ends.
MOVING = """
SELECT x.currency::text AS currency, cat.billing, count(*) AS n,
       array_agg(DISTINCT cat.name ORDER BY cat.name) AS categories
  FROM {table} x JOIN kondge.category cat ON cat.name = x.category
 WHERE {where} AND x.category <> %(to)s
 GROUP BY 1, 2 ORDER BY 1, 2
"""
LOCK_SOURCES = """
SELECT name FROM kondge.category
 WHERE name IN (SELECT x.category FROM {table} x WHERE {where} AND x.category <> %(to)s)
 ORDER BY name FOR SHARE
"""


def move(cur, selection: Selection, operator: str, category: str) -> dict:
    """Move the selection into category: only within one currency and, for
    calling cards, one billing model. A refused move changes nothing."""
    target = categories.show(cur, category, share=True)
    if target is None:
        raise BatchError(f"no category {category}; see 'kondge categories list'")
    if target["kind"] != selection.kind:
        raise BatchError(f"category {category} is for {target['kind']}s")
    sql, params = where(selection)
    params = dict(params, to=category)
    table = _table(selection)
    cur.execute(LOCK_SOURCES.format(table=table, where=sql), params)
    cur.execute(MOVING.format(table=table, where=sql), params)
    refused = [_move_problem(row, target, selection.kind) for row in cur.fetchall()]
    refused = [r for r in refused if r]
    if refused:
        raise BatchError("; ".join(refused) + "; nothing was moved")
    return _apply(cur, operator, "move", selection,
                  "UPDATE {table} x SET category = %(to)s WHERE {where} AND x.category <> %(to)s",
                  {"to": category}, {"to": category})


def _move_problem(row: dict, target: dict, kind: str) -> str | None:
    """Why the row's cards (one currency, one billing model) may not move into target."""
    what = (f"{row['n']} selected {kind}s (category {', '.join(row['categories'])}) are"
            if row["n"] != 1 else f"1 selected {kind} (category {row['categories'][0]}) is")
    if row["currency"] != target["currency"]:
        return (f"{what} in {row['currency']}, category {target['name']} is in "
                f"{target['currency']}: a {kind} keeps its currency; issue new {kind}s in "
                f"{target['name']}, or move these into a category in {row['currency']}")
    if kind == "card" and row["billing"] != target["billing"]:
        return (f"{what} {row['billing']}, category {target['name']} is "
                f"{target['billing']}: a card keeps its billing model; issue new cards in "
                f"{target['name']}, or move these into a {row['billing']} category in "
                f"{row['currency']}")
    return None


def new_operation_id() -> str:
    return "op-" + secrets.token_hex(8)


# Every selected card once per operation id, through the one writer of money.
TOP_UP = """
WITH sel AS (SELECT x.id FROM {table} x WHERE {where} ORDER BY x.id)
SELECT * FROM kondge.post_ledger(
    ARRAY(SELECT id FROM sel), ARRAY(SELECT %(amount)s::numeric FROM sel), 'refill',
    ARRAY(SELECT 'topup:' || %(op)s || ':' || id FROM sel),
    'top-up ' || %(op)s || ' by ' || %(operator)s)
"""


def top_up(cur, selection: Selection, operator: str, amount, currency: str,
           operation_id: str) -> dict:
    """Credit every selected card once per operation id."""
    if selection.kind != "card":
        raise BatchError("only calling cards are topped up")
    bad_currency = currencies.currency_problem(currency)
    if bad_currency:
        raise BatchError(f"--currency: {bad_currency}")
    try:
        value = operator_amount(amount)
    except MoneyError as exc:
        raise BatchError(f"--amount: {exc}") from None
    if value <= 0:
        raise BatchError("--amount: above zero (a correction is not a top-up)")
    finer = currencies.minor_unit_problem(value, currency)
    if finer:
        raise BatchError(f"--amount: {finer}")
    if not OPERATION_ID.match(operation_id or ""):
        raise BatchError("--operation-id: letters, digits, '_', '.', ':', '-', at most 64")
    sql, params = where(selection)
    cur.execute(f"SELECT DISTINCT currency FROM kondge.card x WHERE {sql}", params)
    found = {row["currency"] for row in cur.fetchall()}
    if found - {currency}:
        raise BatchError(f"the selection holds cards in {', '.join(sorted(found))}; "
                         f"a top-up in {currency} needs cards in {currency} only")
    return _apply(cur, operator, "top-up", selection, TOP_UP,
                  {"amount": value, "op": operation_id, "operator": operator},
                  {"amount": value, "currency": currency, "operation_id": operation_id})
