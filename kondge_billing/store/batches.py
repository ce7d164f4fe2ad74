"""Changes to many cards at once: by batch, serial or number range, list or filter.

Each change is one of the operators' functions (sql/functions/op_*.sql,
through audit.change) over the cards kondge.selected picks: it changes
the selected rows and writes one audit record (operator, time, what, how
many). A top-up is a ledger entry per card whose key holds the operation
id, so repeating the command with the same id credits nobody twice.
"""

import json
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime

from . import audit, categories
from ..rating import currencies
from ..identifiers import BATCH_NAME
from ..rating.money import MoneyError, operator_amount

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

    def json(self) -> str:
        """The selection as kondge.selected reads it (sql/functions/selected.sql)."""
        if not any(v is not None for k, v in asdict(self).items() if k != "kind"):
            raise BatchError("say which cards: --batch, --serials, --numbers, --number-range, "
                             "--category or --status")
        return json.dumps({k: list(v) if isinstance(v, tuple) else v
                           for k, v in self.public().items()})


# The selected rows, by id, for the checks made before a change.
SELECTED = "x.id IN (SELECT kondge.selected(%(selection)s))"
TABLES = {"card": "kondge.card", "voucher": "kondge.voucher"}


def count(cur, selection: Selection) -> int:
    cur.execute(f"SELECT count(*) AS n FROM {TABLES[selection.kind]} x WHERE {SELECTED}",
                {"selection": selection.json()})
    return cur.fetchone()["n"]


def _apply(cur, function: str, operator, selection: Selection, *args, details=None) -> dict:
    """kondge.FUNCTION(operator, selection, *args): change and audit at once."""
    row = audit.change(
        cur, BatchError,
        f"SELECT * FROM kondge.{function}(%s, %s{', %s' * len(args)})",
        (audit.operator_name(operator), selection.json(), *args))[0]
    return {"matched": row["matched"], "changed": row["changed"], **(details or {})}


# status changes: activate, suspend, cancel (what each may start from is in
# sql/functions/op_change_status.sql)
STATUS_CHANGES = ("activate", "suspend", "cancel")


def change_status(cur, selection: Selection, action: str, operator: str) -> dict:
    if action not in STATUS_CHANGES:
        raise BatchError(f"a status change is one of {', '.join(STATUS_CHANGES)}")
    row = audit.change(cur, BatchError, "SELECT * FROM kondge.op_change_status(%s, %s, %s)",
                       (audit.operator_name(operator), action, selection.json()))[0]
    return {"action": action, "matched": row["matched"], "changed": row["changed"]}


def extend(cur, selection: Selection, operator: str, days: int | None = None,
           until: datetime | None = None) -> dict:
    """Push expiry back by days (cards that have one), or set it to until."""
    if (days is None) == (until is None):
        raise BatchError("extend: give --days N or --until DATE")
    if days is not None and not 1 <= days <= 36500:
        raise BatchError("--days: from 1 to 36500")
    return dict(_apply(cur, "op_extend", operator, selection, days, until,
                       details={"days": days, "until": until}), action="extend")


# What the cards (or vouchers) a move would take out of their categories are
# in: currency and billing model, with how many (to say which may not move).
MOVING = """
SELECT x.currency::text AS currency, cat.billing, count(*) AS n,
       array_agg(DISTINCT cat.name ORDER BY cat.name) AS categories
  FROM {table} x JOIN kondge.category cat ON cat.name = x.category
 WHERE {selected} AND x.category <> %(to)s
 GROUP BY 1, 2 ORDER BY 1, 2
"""


def move(cur, selection: Selection, operator: str, category: str) -> dict:
    """Move the selection into category: only within one currency and, for
    calling cards, one billing model. A refused move changes nothing."""
    target = categories.show(cur, category)
    if target is None:
        raise BatchError(f"no category {category}; see 'kondge categories list'")
    if target["kind"] != selection.kind:
        raise BatchError(f"category {category} is for {target['kind']}s")
    cur.execute(MOVING.format(table=TABLES[selection.kind], selected=SELECTED),
                {"selection": selection.json(), "to": category})
    refused = [_move_problem(row, target, selection.kind) for row in cur.fetchall()]
    refused = [r for r in refused if r]
    if refused:
        raise BatchError("; ".join(refused) + "; nothing was moved")
    return dict(_apply(cur, "op_move", operator, selection, category,
                       details={"to": category}), action="move")


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
    cur.execute(f"SELECT DISTINCT currency FROM kondge.card x WHERE {SELECTED}",
                {"selection": selection.json()})
    found = {row["currency"] for row in cur.fetchall()}
    if found - {currency}:
        raise BatchError(f"the selection holds cards in {', '.join(sorted(found))}; "
                         f"a top-up in {currency} needs cards in {currency} only")
    return dict(_apply(cur, "op_top_up", operator, selection, value, currency, operation_id,
                       details={"amount": value, "currency": currency,
                                "operation_id": operation_id}), action="top-up")
