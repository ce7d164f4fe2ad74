"""kondge cdrs: call detail records, listed or written to XLSX."""

import argparse

from ..calls import cdrs
from .. import xlsx
from .common import (EXIT_OK, command, datetime_arg, emit, group, in_transaction, new_file,
                     table)


def register(commands):
    sub = group(commands, "cdrs", "call detail records")
    p = command(sub, "list", cmd_list, "list the latest call records")
    _filters(p)
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p = command(sub, "export", cmd_export, "write call records to an XLSX file")
    _filters(p)
    p.add_argument("--limit", type=int, help="at most this many, the latest (default all)")
    p.add_argument("--out", required=True, help="the .xlsx file to write")


def _filters(p):
    p.add_argument("--card", help="only this card's calls")
    p.add_argument("--batch", help="only calls of this batch's cards")
    p.add_argument("--gateway", help="only calls through this gateway (its name)")
    p.add_argument("--destination", type=_digits,
                   help="only destinations starting with these digits")
    p.add_argument("--from", dest="start", type=datetime_arg,
                   help="connected at or after (ISO 8601)")
    p.add_argument("--to", dest="end", type=datetime_arg, help="connected before (ISO 8601)")
    p.add_argument("--flag", help="only CDRs carrying this flag, e.g. no-authorisation, "
                                  "overrun, duration-from-h323-times (see docs/gateways.md, "
                                  "Billing rules)")


def _digits(text):
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not digits (a destination prefix)")
    return text


def cmd_list(args, s):
    rows = _cdrs(args, s)
    emit(args, rows, table(rows, ["id", "connect_time", "gateway", "card_number", "caller",
                                  "destination", "duration", "charge", "currency", "flags"]))
    return EXIT_OK


def cmd_export(args, s):
    out = new_file(args.out, ".xlsx")
    rows = _cdrs(args, s)
    count = xlsx.write_table(out, "cdrs", cdrs.CDR_COLUMNS,
                             ([r[c] for c in cdrs.CDR_COLUMNS] for r in reversed(rows)))
    emit(args, {"cdrs": count, "file": str(out)}, [f"{count} CDRs written to {out} (times in UTC)"])
    return EXIT_OK


def _cdrs(args, s):
    """The latest CDRs the filters select, newest first."""
    return in_transaction(s, lambda cur: cdrs.list_cdrs(
        cur, args.card, args.limit, batch=args.batch, gateway=args.gateway,
        destination=args.destination, since=args.start, until=args.end, flag=args.flag))
