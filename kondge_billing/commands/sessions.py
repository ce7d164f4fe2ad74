"""kondge sessions: live calls and the holds of calls being set up."""

from ..calls import sessions
from ..calls.service import Billing
from .common import EXIT_OK, command, emit, group, in_transaction, open_database, table


def register(commands):
    sub = group(commands, "sessions", "live calls and the holds of calls being set up")
    p = command(sub, "list", cmd_list,
                "the calls up now and the holds that still count: card, caller, destination, "
                "gateway, start, granted seconds, elapsed")
    p.add_argument("--card", help="only this card's")
    p = command(sub, "sweep", cmd_sweep,
                "drop expired holds and close calls whose Stop never came (the supervisor "
                "does this every KONDGE_SWEEP_SECONDS)")
    p.add_argument("--grace", type=int,
                   help="close calls this many seconds past their granted time "
                        "(default KONDGE_SESSION_GRACE)")


def cmd_list(args, s):
    rows = in_transaction(s, lambda cur: sessions.live(cur, args.card))
    emit(args, rows, table(rows, ["card", "caller", "destination", "gateway", "state",
                                  "started_at", "granted_seconds", "elapsed", "amount"]))
    return EXIT_OK


def cmd_sweep(args, s):
    """The supervisor's sweep, run once as the service runs it (statement by statement)."""
    db = open_database(s)
    try:
        billing = Billing.from_settings(s, db)
        result = billing.sweep(s.session_grace if args.grace is None else args.grace)
    finally:
        db.close()
    emit(args, result, [f"{result['holds_lapsed']} unstarted hold(s) lapsed, "
                        f"{result['sessions_closed']} call(s) without Stop closed"])
    return EXIT_OK
