"""Batch issuance: many cards (or recharge vouchers) of one category at once.

Numbers and PINs come from the operating system's cryptographic source
(`secrets`): a number says nothing about the next one. A number is a
non-zero digit, random digits and a Luhn check digit. PINs are stored only
as keyed hashes; the issuance file is the one place a PIN is ever shown.

The numbers and PIN hashes go in with COPY into a temporary table of the
session; kondge.op_issue then makes the batch from it in one INSERT ...
SELECT each for the cards and for their opening ledger entries (vouchers
have none) and writes its audit record, so 100,000 cards take seconds.
"""

import io
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from . import audit, card_tariffs, categories
from ..rating import currencies
from ..identifiers import luhn_digit
from .pins import pin_hash
from ..progress import Progress

NUMBER_LENGTHS = range(8, 21)
DEFAULT_NUMBER_LENGTH = 12
MAX_BATCH = 1_000_000


class IssueError(ValueError):
    pass


@dataclass(frozen=True)
class Issued:
    """One printed piece, the only time its PIN exists in clear."""

    serial: int
    number: str
    pin: str


def new_number(length: int = DEFAULT_NUMBER_LENGTH) -> str:
    """A random card number of length digits: no leading zero, Luhn check digit last."""
    rest = length - 2
    body = f"{1 + secrets.randbelow(9)}{secrets.randbelow(10 ** rest):0{rest}d}"
    return body + luhn_digit(body)


def new_pin(length: int) -> str:
    return f"{secrets.randbelow(10 ** length):0{length}d}"


def new_numbers(count: int, length: int = DEFAULT_NUMBER_LENGTH, taken=frozenset()) -> list[str]:
    """count distinct new numbers, none of them in taken."""
    found: dict[str, None] = {}
    while len(found) < count:
        number = new_number(length)
        if number not in taken:
            found[number] = None
    return list(found)


def expiry_at_issue(category: dict, now: datetime) -> datetime | None:
    """'fixed' and 'after-issue' fix the expiry now; 'after-first-use' on the first call."""
    if category["validity"] == "fixed":
        return category["valid_until"]
    if category["validity"] == "after-issue":
        return now + timedelta(days=category["valid_days"])
    return None


def _copy_rows(cur, key: bytes, numbers: list[str], pin_length: int, progress) -> dict:
    """COPY (number, pin hash) into issue_new; return {number: PIN}."""
    pins, buf = {}, io.StringIO()
    for number in numbers:
        pin = pins[number] = new_pin(pin_length)
        buf.write(f"{number}\t{pin_hash(key, number, pin)}\n")
        progress.advance()
    buf.seek(0)
    cur.copy_expert("COPY issue_new (number, pin_hash) FROM STDIN", buf)
    return pins


def _stage(cur, key, count, number_length, pin_length, progress) -> dict:
    """Fill issue_new with count numbers unused by any card or voucher."""
    cur.execute("CREATE TEMP TABLE issue_new (number text PRIMARY KEY, pin_hash text NOT NULL) "
                "ON COMMIT DROP")
    pins: dict[str, str] = {}
    while len(pins) < count:
        numbers = new_numbers(count - len(pins), number_length, taken=pins.keys())
        staged = _copy_rows(cur, key, numbers, pin_length, progress)
        cur.execute("""DELETE FROM issue_new n
                        WHERE EXISTS (SELECT 1 FROM kondge.card c WHERE c.number = n.number)
                           OR EXISTS (SELECT 1 FROM kondge.voucher v WHERE v.number = n.number)
                       RETURNING number""")
        for row in cur.fetchall():
            del staged[row["number"]]
        pins.update(staged)
    return pins


# The batch itself: kondge.op_issue (sql/functions/op_issue.sql) takes the
# staged numbers and hashes and makes the batch, its cards (with their
# opening ledger entries) or vouchers, and its audit record.
ISSUE = """
SELECT * FROM kondge.op_issue(
    %(operator)s, %(category)s, %(batch)s, %(active)s, %(tariff)s,
    ARRAY(SELECT number FROM issue_new ORDER BY number),
    ARRAY(SELECT pin_hash FROM issue_new ORDER BY number))
"""


def _category_problems(category: dict) -> list[str]:
    """What a category made before its values were checked may still hold."""
    name, currency = category["name"], category["currency"]
    found = [currencies.currency_problem(currency),
             categories.money_problem("face value", category["face_value"], currency)]
    return [f"category {name}: {p}; it issues nothing until it is fixed "
            "('kondge categories modify', or a new category)" for p in found if p]


def _check_tariff(cur, category: dict, tariff: str | None):
    """Refuse a tariff the batch's cards may not get as their own."""
    if tariff is None:
        return
    if category["kind"] != "card":
        raise IssueError("--tariff: vouchers rate no calls; they have no tariff")
    _tariff_id, problem = card_tariffs.check(cur, tariff, category["currency"],
                                            f"category {category['name']}")
    if problem:
        raise IssueError(problem)


def issue(cur, key: bytes, category_name: str, count: int, batch_name: str | None,
          operator: str, number_length: int = DEFAULT_NUMBER_LENGTH, active: bool = True,
          now: datetime | None = None, progress=Progress, tariff: str | None = None) -> dict:
    """Issue a batch in the caller's transaction; return it with its pieces.

    The cards get the category's currency and face value; tariff, if given,
    is their own tariff (in that currency). The category stays locked FOR
    SHARE until commit, so its currency and billing cannot change meanwhile."""
    category = categories.show(cur, category_name)
    if category is None:
        raise IssueError(f"no category {category_name}; add it with 'kondge categories add'")
    problems = _category_problems(category)
    if problems:
        raise IssueError("; ".join(problems))
    _check_tariff(cur, category, tariff)
    if not 1 <= count <= MAX_BATCH:
        raise IssueError(f"count: from 1 to {MAX_BATCH:,}")
    if number_length not in NUMBER_LENGTHS:
        raise IssueError("number length: from 8 to 20 digits")
    cur.execute("SELECT now() AS now")
    now = now or cur.fetchone()["now"]
    expires = expiry_at_issue(category, now)
    if expires is not None and expires <= now:
        raise IssueError(f"category {category_name} is valid until {expires:%Y-%m-%d}, "
                         "which has passed: 'kondge categories modify' it first")
    batch_name = batch_name or f"{category_name}-{now:%Y%m%d-%H%M%S}"
    cur.execute("SELECT 1 FROM kondge.batch WHERE name = %s", (batch_name,))
    if cur.fetchone():
        raise IssueError(f"batch {batch_name} exists already; choose another --batch")
    bar = progress("generating", count)
    pins = _stage(cur, key, count, number_length, category["pin_length"], bar)
    bar.finish()
    made = audit.change(cur, IssueError, ISSUE, {
        "operator": audit.operator_name(operator), "category": category_name, "batch": batch_name,
        "active": active, "tariff": tariff})[0]
    table = "card" if made["kind"] == "card" else "voucher"
    cur.execute(f"SELECT serial, number FROM kondge.{table} WHERE batch_id = %s ORDER BY serial",
                (made["batch_id"],))
    pieces = [Issued(row["serial"], row["number"], pins[row["number"]]) for row in cur]
    return {"batch": batch_name, "batch_id": made["batch_id"], "kind": made["kind"],
            "category": category_name, "count": len(pieces), "validity": category["validity"],
            "tariff": tariff, "face_value": made["face_value"], "currency": made["currency"],
            "expires_at": made["expires_at"], "status": made["status"], "pieces": pieces}


PRINT_COLUMNS = ["serial", "number", "pin", "face_value", "currency", "expiry", "batch"]


def print_rows(batch: dict):
    """The rows a card printer needs, in serial order."""
    expiry = batch["expires_at"]
    expiry_text = expiry.date().isoformat() if expiry else (
        "after first use" if batch.get("validity") == "after-first-use" else "no expiry")
    for piece in batch["pieces"]:
        yield (piece.serial, piece.number, piece.pin, batch["face_value"], batch["currency"],
               expiry_text, batch["batch"])
