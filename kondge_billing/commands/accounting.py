"""kondge accounting: records kept aside, the spools, and the check that every
answered record was stored."""

from ..edge import answered, attributes, spool
from ..calls import cdrs
from ..store import gateways
from ..operations import stack
from ..errors import Unavailable
from ..edge.request import accounting_record
from ..calls.service import Billing
from .common import (EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE, CommandError, command, date_arg,
                     emit, group, in_transaction, open_database, table)


def register(commands):
    sub = group(commands, "accounting",
                "accounting records kept aside, the spools, and the check that every "
                "answered record was stored")
    p = command(sub, "parked", cmd_parked,
                "records the call path could not process, kept whole in "
                "kondge.unprocessed_record (answered, not yet stored)")
    p.add_argument("--all", action="store_true", help="also those replayed already")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p = command(sub, "show", cmd_show, "one parked record, with its pairs and the error")
    p.add_argument("id", type=int)
    p = command(sub, "replay", cmd_replay,
                "store parked records through the call path, once what stopped them is "
                "mended; each is marked replayed with what came of it. Exit 1 if one "
                "could not be stored, 3 if the database went away")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", type=int, help="this record")
    which.add_argument("--all", action="store_true", help="every record not yet replayed")
    p = command(sub, "check", cmd_check,
                "prove that every accounting record the server answered was stored (or is "
                "waiting in a spool, or set aside): reads the journals of answered records "
                "and finds each in the database. Exit 1 if one is missing")
    p.add_argument("--since", type=date_arg,
                   help="only journals from this day on (YYYY-MM-DD); default: all kept "
                        "(KONDGE_ANSWERED_DAYS)")
    command(sub, "spool", cmd_spool,
            "records waiting in the spools (kept while the database could not take "
            "them) and quarantined records; the supervisor stores them by itself. "
            "Exit 3 if a spool could not keep a record (that record was not answered)")


def cmd_parked(args, s):
    rows = in_transaction(s, lambda cur: cdrs.parked(cur, not args.all, limit=args.limit))
    for row in rows:
        row["call"] = _summary(row["pairs"])
    emit(args, rows, table(rows, ["id", "received_at", "call", "replayed_at",
                                  "replay_outcome"]))
    return EXIT_OK


def _summary(pairs) -> str:
    values = {}
    for name, value in pairs:
        values.setdefault(name, value)
    return " ".join(f"{values[n]}" for n in ("Acct-Status-Type", "User-Name",
                                             "Called-Station-Id", "Acct-Session-Id")
                    if n in values)[:80]


def cmd_show(args, s):
    rows = in_transaction(s, lambda cur: cdrs.parked(cur, False, args.id))
    if not rows:
        raise CommandError(f"no parked record {args.id}; see 'kondge accounting parked --all'")
    row = rows[0]
    emit(args, row, [f"record {row['id']}, received {row['received_at']:%Y-%m-%d %H:%M:%S}"]
         + [f"  {name} = {value!r}" for name, value in row["pairs"]]
         + ["error:"] + ["  " + line for line in row["error"].splitlines()]
         + ([f"replayed {row['replayed_at']:%Y-%m-%d %H:%M:%S}: {row['replay_outcome']}"]
            if row["replayed_at"] else []))
    return EXIT_OK


def cmd_replay(args, s):
    db = open_database(s)
    done, failed = [], []
    try:
        rows = db.run(lambda cur: cdrs.parked(cur, not args.id, args.id, limit=None))
        if args.id and not rows:
            raise CommandError(f"no parked record {args.id}; see 'kondge accounting parked'")
        billing = Billing.from_settings(s, db)
        for row in rows:
            if row["replayed_at"] is not None:
                raise CommandError(f"record {row['id']} was replayed already "
                              f"({row['replay_outcome']})")
            pairs = tuple((name, value) for name, value in row["pairs"]) + (
                (attributes.TIMESTAMP, str(int(row["received_at"].timestamp()))),)
            try:
                rec = accounting_record(pairs, row["received_at"])
                result = billing.account(billing.gateways.for_accounting(rec.gateway_address),
                                         rec)
            except Unavailable as exc:
                emit(args, {"stored": done, "failed": failed, "stopped": str(exc)},
                     [f"{len(done)} record(s) stored; stopped: {exc}"])
                return EXIT_UNAVAILABLE
            except Exception as exc:  # noqa: BLE001 - reported, the record stays parked
                failed.append({"id": row["id"], "error": f"{type(exc).__name__}: {exc}"})
                continue
            db.run(lambda cur: cdrs.mark_replayed(cur, row["id"], result.outcome))
            done.append(row["id"])
    finally:
        db.close()
    emit(args, {"stored": done, "failed": failed},
         [f"{len(done)} record(s) stored" + (f": {', '.join(map(str, done))}" if done else "")]
         + [f"record {f['id']} still cannot be processed: {f['error']}" for f in failed])
    return EXIT_REFUSED if failed else EXIT_OK


def cmd_spool(args, s):
    counts = spool.count(stack.spool_dirs(s))
    problems = spool.problems(stack.spool_dirs(s))
    data = dict(counts, problems=problems)
    lines = [f"spooled records waiting: {counts['spooled']}",
             f"quarantined records not yet stored: {counts['quarantined']}"]
    lines += [f"PROBLEM: {p}" for p in problems]
    emit(args, data, lines)
    return EXIT_UNAVAILABLE if problems else EXIT_OK


def run_dirs(s):
    """The run directories of the processes that run the hook (one spool, one
    journal and one quarantine each)."""
    return [d.parent for d in stack.spool_dirs(s)]


def cmd_check(args, s):
    if s.gateway_directory.exists():
        directory = gateways.FileDirectory(s.gateway_directory)
    else:
        directory = _TableDirectory(in_transaction(s, lambda cur: gateways.all_gateways(cur)
                                                   + gateways.removed_gateways(cur)))
    report = in_transaction(s, lambda cur: answered.check(cur, run_dirs(s), directory,
                                                          args.since))
    data = {"answered": report.answered, "stored": report.stored, "waiting": report.waiting,
            "parked": report.parked, "ignored": report.ignored,
            "unverifiable": report.unverifiable, "missing": report.missing}
    lines = [f"answered: {report.answered}; stored: {report.stored}; waiting in a spool: "
             f"{report.waiting}; set aside (kondge accounting parked): {report.parked}; "
             f"nothing to store: {report.ignored}; without a call identity: "
             f"{report.unverifiable}; MISSING: {len(report.missing)}"]
    for m in report.missing[:50]:
        lines.append(f"  missing: gateway {m['gateway_id']} call {m['call_id']} session "
                     f"{m['acct_session_id'] or '-'} {m['status']} ({m['journal']})")
    emit(args, data, lines)
    return EXIT_OK if report.ok else EXIT_REFUSED


class _TableDirectory:
    """The gateway table, when no server on this host wrote its directory file."""

    def __init__(self, rows):
        self.by_address = {}
        for gw in rows:
            self.by_address.setdefault(gw.address, gw)

    def for_accounting(self, address):
        from ..errors import UnknownGateway
        try:
            return self.by_address[address]
        except KeyError:
            raise UnknownGateway(f"no gateway has (or had) the address {address!r}") from None
