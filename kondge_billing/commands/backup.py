"""kondge backup and kondge restore: pgBackRest backups of the database,
restore (to the end of the archive or to a moment) and the restore drill."""

from pathlib import Path

from ..operations import backup
from .common import EXIT_OK, EXIT_REFUSED, CommandError, command, datetime_arg, emit, table


def register(commands):
    p = commands.add_parser(
        "backup", help="back up the database (pgBackRest), list backups, run a restore drill",
        description="Back up the database with pgBackRest into KONDGE_BACKUP_REPO: "
                    "'kondge backup --full' or '--diff' (the default: differential, full "
                    "if there is none yet); WAL is archived continuously between backups.")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--full", dest="kind", action="store_const", const="full",
                      help="a full backup")
    kind.add_argument("--diff", dest="kind", action="store_const", const="diff",
                      help="a differential backup: what changed since the last full one")
    p.set_defaults(func=cmd_backup, kind="diff")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    command(sub, "list", cmd_list, "the backups in the repository, oldest first")
    d = command(sub, "drill", cmd_drill,
                "restore the newest backup and the WAL into a scratch cluster, time it, "
                "check its books, remove it (the service is untouched); exit 1 if the "
                "books do not balance")
    d.add_argument("--to", type=datetime_arg, metavar="TIME",
                   help="restore to this moment instead of the end of the archive")
    d.add_argument("--port", type=int,
                   help="the scratch cluster's port (default KONDGE_PG_PORT: it listens on a "
                        "socket folder of its own only, so the two do not meet)")
    d.add_argument("--keep", action="store_true",
                   help="leave the scratch cluster running (under $KONDGE_VAR/drill) to look at")
    t = command(sub, "timer", cmd_timer,
                "the systemd service and timer, and the cron lines, of the nightly backup "
                "(full on Sunday, differential the other nights)")
    t.add_argument("--install", metavar="DIR", nargs="?", const="/etc/systemd/system",
                   help="write the unit files there (default /etc/systemd/system); then "
                        "'systemctl daemon-reload && systemctl enable --now kondge-backup.timer'")

    r = commands.add_parser(
        "restore", help="restore the database from the backups (pgBackRest)",
        description="Replace the database by the newest backup plus the archived WAL, up to "
                    "the end of the archive or to --to TIME. Everything committed after that "
                    "moment is gone from the database. FreeRADIUS keeps running meanwhile: "
                    "accounting goes to the spool and is stored once the database is back.")
    r.add_argument("--json", action="store_true", help="print JSON for scripts")
    r.add_argument("--to", type=datetime_arg, metavar="TIME",
                   help="the moment to restore to (ISO 8601; without an offset, this "
                        "machine's clock), e.g. 2027-03-01T14:05:00+00:00")
    r.add_argument("--yes", action="store_true",
                   help="really replace the database (required)")
    r.set_defaults(func=cmd_restore)


def cmd_backup(args, s):
    if not s.private_cluster:
        raise CommandError("KONDGE_DSN names a database this service does not run: back it up "
                      "where it runs ('kondge ha backup' for the HA topology)")
    record = backup.run_backup(s, args.kind)
    emit(args, record, [f"backup {record['label']} ({record['type']}) done in "
                        f"{record['seconds']} s: {record['database_bytes']} bytes of database, "
                        f"{record['repository_bytes']} bytes added to {s.backup_repo}"])
    return EXIT_OK


def cmd_list(args, s):
    rows = backup.backups(s) if backup.stanza_exists(s) else []
    emit(args, rows, table(rows, ["label", "type", "started", "finished", "database_bytes",
                                  "repository_bytes", "wal_start", "wal_stop"]))
    return EXIT_OK


def cmd_drill(args, s):
    port = args.port or s.pg_port
    result = backup.drill(s, port, args.to, keep=args.keep)
    emit(args, result, [
        f"restored to {'--to ' + args.to.isoformat() if args.to else 'the end of the archive'} "
        f"in {result['restore_seconds']} s, serving after {result['serving_seconds']} s",
        f"cards {result['cards']}, CDRs {result['cdrs']} (the last at {result['last_cdr']})",
        f"charges {result['charges']} = call debits {result['call_debits']}: "
        f"{'yes' if result['charges'] == result['call_debits'] else 'NO'}; "
        f"balances not equal to their ledger: {result['balance_mismatches']}",
        "the books balance" if result["balanced"] else "PROBLEM: the books do not balance"]
        + ([f"the scratch cluster runs on port {port}: {result['kept']}"] if args.keep else []))
    return EXIT_OK if result["balanced"] else EXIT_REFUSED


def cmd_timer(args, s):
    units = backup.timer_units(s)
    if args.install:
        folder = Path(args.install)
        for name, text in units.items():
            (folder / name).write_text(text)
        emit(args, {"installed": [str(folder / n) for n in units]}, [
            f"written {', '.join(units)} in {folder}; now: systemctl daemon-reload && "
            "systemctl enable --now kondge-backup.timer"])
        return EXIT_OK
    for name, text in units.items():
        print(f"# {name}\n{text}")
    print("# or, instead of the timer, in /etc/cron.d/kondge-backup:")
    print(backup.cron_lines(s), end="")
    return EXIT_OK


def cmd_restore(args, s):
    if not args.yes:
        raise CommandError("a restore replaces the database (what was committed after the restored "
                      "moment is gone): add --yes to do it; 'kondge backup drill' tries a "
                      "restore without touching the database")
    if not s.private_cluster:
        raise CommandError("KONDGE_DSN names a database this service does not run: restore it "
                      "where it runs ('kondge ha restore' for the HA topology)")
    result = backup.restore(s, args.to)
    emit(args, result, [
        f"restored to {result['target']} in {result['restore_seconds']} s; the database "
        f"serves again after {result['serving_seconds']} s",
        "spooled accounting is stored by the supervisor within seconds"])
    return EXIT_OK
