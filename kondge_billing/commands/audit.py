"""kondge audit: the audit log of operator changes (written by the database
with each change: who, the database role, when, what and how many)."""

from ..store import audit
from .common import EXIT_OK, command, emit, group, in_transaction, table


def register(commands):
    sub = group(commands, "audit", "the audit log of operator changes")
    p = command(sub, "list", cmd_list, "the latest audit records")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--action", help="only this action, e.g. top-up")


def cmd_list(args, s):
    rows = in_transaction(s, lambda cur: audit.recent(cur, args.limit, args.action))
    emit(args, rows, table(rows, ["id", "at", "operator", "db_user", "action", "count",
                                  "selection", "details"]))
    return EXIT_OK
