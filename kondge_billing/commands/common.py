"""What the command modules share: building their parsers, output, the
database, files, and the option types and options several groups use.

A command is a function (args, settings) -> exit status. When it cannot do
what was asked it raises CommandError, or lets a domain error (cards.CardError,
gateways.GatewayError, ...) pass: cli.OUTCOMES turns either into a message
and exit 1.
"""

import argparse
import json
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from ..rating import currencies
from ..store.db import Database
from ..rating.money import MoneyError, operator_amount
from ..rating import tariff_file

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3


class CommandError(Exception):
    """An operator request that cannot be done as asked (exit 1). Not the
    call path's Refusal (errors.py), which answers a gateway."""


# --- parsers --------------------------------------------------------------------------

def group(commands, name, help_text):
    """The group `kondge NAME`: the subparsers its commands go in."""
    p = commands.add_parser(name, help=help_text, description=help_text)
    return p.add_subparsers(dest="action", required=True, metavar="ACTION")


def command(sub, name, func, help_text, description=None):
    """A command running func(args, settings); it takes --json after its name too."""
    p = sub.add_parser(name, help=help_text, description=description or help_text)
    # SUPPRESS keeps this default from overriding a --json given before the command
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="print JSON for scripts")
    p.set_defaults(func=func)
    return p


def operator_option(p):
    p.add_argument("--operator", help="who does it, for the audit log "
                                      "(default $KONDGE_OPERATOR, else the login user)")


# --- option types: a value argparse refuses is wrong usage (exit 2) ---------------------

def amount_arg(text):
    """An amount an operator typed (money.operator_amount)."""
    try:
        return operator_amount(text)
    except MoneyError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def currency_arg(text):
    """An active ISO 4217 code in capitals (currencies.py)."""
    problem = currencies.currency_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def date_arg(text):
    """A day: YYYY-MM-DD."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day like 2027-12-31") from None


def datetime_arg(text):
    """An ISO 8601 date/time; without an offset, on this machine's clock."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date/time like 2027-12-31 "
                                         "or 2027-12-31T23:59+00:00") from None
    if value.tzinfo:
        return value
    try:
        return value.astimezone()
    except (ValueError, OverflowError) as exc:        # e.g. 0001-01-01 east of UTC
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


# --- output ------------------------------------------------------------------------------

def plain(value):
    """value with Decimals, dates and times as text (for JSON and tables)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def emit(args, data, text_lines):
    """data as JSON with --json, else the lines of text."""
    if args.json:
        print(json.dumps(plain(data), indent=2))
    else:
        for line in text_lines:
            print(line)


def table(rows, columns) -> list[str]:
    if not rows:
        return ["(none)"]
    def cell(value):
        if value is None:
            return ""
        if isinstance(value, (list, tuple)):
            return ",".join(str(v) for v in value)
        return str(plain(value))
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*columns), fmt.format(*("-" * w for w in widths))] + [
        fmt.format(*r) for r in cells]


def fields(record) -> list[str]:
    """One 'key: value' line per field."""
    return [f"{k}: {plain(v) if v is not None else ''}" for k, v in record.items()]


# --- the database -----------------------------------------------------------------------

def open_database(settings) -> Database:
    return Database(settings.dsn, timeout_ms=60000, application_name="kondge-cli")


def in_transaction(settings, work):
    """Run work(cur) in one transaction (the CLI's changes are all-or-nothing)."""
    db = open_database(settings)
    try:
        return db.transaction(work)
    finally:
        db.close()


def show_one(args, s, lookup, missing):
    """Print the one record lookup(cur) finds, or refuse with missing."""
    record = in_transaction(s, lookup)
    if record is None:
        raise CommandError(missing)
    emit(args, record, fields(record))
    return EXIT_OK


# --- files ---------------------------------------------------------------------------------

def new_file(path_text, suffix) -> Path:
    """The file to write: its name ends in suffix, its folder exists."""
    path = Path(path_text)
    if path.suffix.lower() != suffix:
        raise CommandError(f"{path}: the file name must end in {suffix}")
    if not path.parent.is_dir():
        raise CommandError(f"{path.parent}: no such folder")
    return path


def parsed_tariff(path) -> tariff_file.TariffDoc:
    """The tariff file at path; refused, each problem on stderr, if it does not validate."""
    doc, problems = tariff_file.parse_file(path)
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        raise CommandError(f"{path}: {len(problems)} problem(s); nothing done")
    return doc
