"""kondge ha: the HA topology in miniature on this machine (pg_auto_failover
monitor, primary and standby, two RADIUS server sets): up, down, status,
backup, restore, and the runner that keeps it going."""

import contextlib
import sys

from ..operations import backup, ha, ha_restore
from .common import (EXIT_OK, EXIT_UNAVAILABLE, CommandError, command, datetime_arg, emit, group,
                     table)


def register(commands):
    sub = group(commands, "ha", "the HA topology on this machine: a primary and a standby "
                                "database with automatic failover, two RADIUS server sets")
    command(sub, "up", cmd_up,
            "make what is missing (pg_auto_failover monitor, primary, standby; the two RADIUS "
            "sets on KONDGE_HA_LISTEN) and start it all in the background (idempotent)")
    command(sub, "down", cmd_down, "stop the RADIUS sets, the runner, both nodes and the monitor")
    command(sub, "status", cmd_status,
            "each node's role and health, replication lag, the RADIUS sets, the last backup; "
            "exit 0 if a primary serves with a standby in sync and both sets run, 3 if not")
    p = command(sub, "backup", cmd_backup, "a backup of the topology's database (pgBackRest, "
                                            "from the primary; WAL archived from whichever node is primary)")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--full", dest="kind", action="store_const", const="full", help="full")
    kind.add_argument("--diff", dest="kind", action="store_const", const="diff",
                      help="differential (the default; full if there is none)")
    p.set_defaults(kind="diff")
    r = command(sub, "restore", cmd_restore,
                "replace the topology's database by its newest backup plus the archived WAL "
                "(to the end of the archive or to --to TIME): pgBackRest restores the primary, "
                "pg_auto_failover copies the standby from it again. Everything committed "
                "after that moment is gone; the RADIUS sets keep running and store the "
                "accounting they spooled meanwhile")
    r.add_argument("--to", type=datetime_arg, metavar="TIME",
                   help="the moment to restore to (ISO 8601; without an offset, this "
                        "machine's clock), e.g. 2027-03-01T14:05:00+00:00")
    r.add_argument("--yes", action="store_true", help="really replace the database (required)")
    for name, func, text in (
            ("hold", cmd_hold, "stop a node (its keeper and PostgreSQL) and keep it stopped: "
                               "the other serves alone, as primary"),
            ("release", cmd_release, "start a held node again: it rejoins (as a standby if "
                                     "the other is primary)")):
        p = command(sub, name, func, text)
        p.add_argument("node", choices=ha.NODES)
    command(sub, "run", cmd_run, "the runner in the foreground (ha up starts it): starts "
                                 "the monitor again if it stops, and a node whose keeper "
                                 "stopped once the other serves as primary (it rejoins as "
                                 "a standby)")


def cmd_up(args, s):
    t = ha.Topology(s)
    ha.up(t)
    st = ha.status(t)
    emit(args, st, status_lines(t, st) + [
        f"gateways list {s.ha_listen[0]} as the primary RADIUS server and {s.ha_listen[1]} "
        f"as the secondary (auth {s.auth_port}, acct {s.acct_port})"])
    return EXIT_OK


def cmd_down(args, s):
    ha.down(ha.Topology(s))
    emit(args, {"stopped": True}, ["stopped"])
    return EXIT_OK


def status_lines(t, st) -> list[str]:
    lines = [f"monitor: {'keeper pid ' + str(st['keepers']['monitor']) if st['keepers']['monitor'] else 'not running'}"
             f" (port {t.port('monitor')})"]
    if st.get("monitor_error"):
        lines.append(f"PROBLEM: the monitor does not answer: {st['monitor_error']}")
    rows = [dict(n, keeper=st["keepers"].get(n["name"])) for n in st["nodes"]]
    lines += table(rows, ["name", "port", "state", "goal", "health", "lsn", "keeper"])
    for r in st["replication"]:
        lines.append(f"replication to {r['standby']}: {r['state']}, {r['sync_state']}, "
                     f"{r['replay_lag_bytes']} bytes behind"
                     + (f" ({r['replay_lag_seconds']:.3f} s)" if r["replay_lag_seconds"] else ""))
    for name, info in st["sets"].items():
        lines.append(f"RADIUS {name}: {'running' if info.get('up') else 'NOT all running'} on "
                     f"{info.get('listen')} (supervisor pid {info.get('supervisor_pid')})")
    last = st["last_backup"]
    lines.append(f"last backup: {last['label']} ({last['type']}), finished {last['finished']}"
                 if last else "last backup: none (kondge ha backup --full)")
    return lines


def healthy(st) -> bool:
    states = sorted(n["state"] for n in st["nodes"])
    return (states == ["primary", "secondary"] and len(st["sets"]) == 2
            and all(v.get("up") for v in st["sets"].values()))


def cmd_status(args, s):
    t = ha.Topology(s)
    st = ha.status(t)
    emit(args, st, status_lines(t, st))
    return EXIT_OK if healthy(st) else EXIT_UNAVAILABLE


def cmd_backup(args, s):
    t = ha.Topology(s)
    bs = t.backup_settings()
    backup.write_conf(bs, t.backup_nodes())
    record = backup.run_backup(bs, args.kind)
    emit(args, record, [f"backup {record['label']} ({record['type']}) done in "
                        f"{record['seconds']} s into {bs.backup_repo}"])
    return EXIT_OK


def cmd_restore(args, s):
    if not args.yes:
        raise CommandError("a restore replaces the topology's database on both nodes (what was "
                      "committed after the restored moment is gone): add --yes to do it; "
                      "'kondge ha backup' first if the newest backup is too old")
    # with --json, the progress lines go to stderr: stdout is the JSON alone
    progress = sys.stderr if getattr(args, "json", False) else sys.stdout
    with contextlib.redirect_stdout(progress):
        result = ha_restore.restore(ha.Topology(s), args.to)
    emit(args, result, [
        f"{result['restored_node']} restored to {result['target']} in "
        f"{result['restore_seconds']} s; it serves as the primary after "
        f"{result['serving_seconds']} s, with {result['standby']} its standby in sync after "
        f"{result['standby_in_sync_seconds']} s",
        "the RADIUS sets store the accounting they spooled meanwhile within seconds"])
    return EXIT_OK


def cmd_run(args, s):
    return ha.run_foreground(ha.Topology(s))


def cmd_hold(args, s):
    ha.hold(ha.Topology(s), args.node)
    emit(args, {"held": args.node}, [f"{args.node} stopped and held; 'kondge ha release "
                                     f"{args.node}' starts it again"])
    return EXIT_OK


def cmd_release(args, s):
    ha.release(ha.Topology(s), args.node)
    emit(args, {"released": args.node}, [f"{args.node} started; it rejoins by itself"])
    return EXIT_OK
