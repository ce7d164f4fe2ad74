"""kondge server: run, start and stop the service (PostgreSQL, FreeRADIUS, the web portal)."""

import argparse
from pathlib import Path

from ..operations import backup, radius_config, stack, supervisor
from ..store import gateways
from ..edge import spool
from .common import EXIT_OK, EXIT_UNAVAILABLE, command, emit, group


def register(commands):
    sub = group(commands, "server", "run, start, stop the service (PostgreSQL + FreeRADIUS)")
    p = command(sub, "run", cmd_run, "run in the foreground; Ctrl-C stops everything")
    p.add_argument("--ready-file", help=argparse.SUPPRESS)
    command(sub, "start", cmd_start,
            "start in the background; with a supervisor gone, take over the parts that "
            "still run and start only what is missing (idempotent)")
    command(sub, "stop", cmd_stop, "stop the background service")
    command(sub, "db-stop", cmd_db_stop,
            "stop PostgreSQL for maintenance and keep it stopped (FreeRADIUS spools accounting)")
    command(sub, "db-start", cmd_db_start, "start PostgreSQL again after db-stop")
    command(sub, "status", cmd_status, "report what runs; exit 0 if everything runs, 3 if not")
    p = command(sub, "unit", cmd_unit,
                "the systemd unit that runs the service at boot and restarts the "
                "supervisor if it dies (print it, or --install it)")
    p.add_argument("--install", metavar="PATH", nargs="?",
                   const="/etc/systemd/system/kondge.service",
                   help="write it there (default /etc/systemd/system/kondge.service); then "
                        "'systemctl daemon-reload && systemctl enable --now kondge'")


def cmd_run(args, s):
    return stack.run_foreground(s, Path(args.ready_file) if args.ready_file else None)


def cmd_start(args, s):
    return stack.start_background(s)


def cmd_stop(args, s):
    return stack.stop_background(s)


def cmd_db_stop(args, s):
    stack.db_stop(s)
    emit(args, {"postgresql": False}, [
        "PostgreSQL stopped; the supervisor leaves it stopped until 'kondge server db-start'.",
        "Meanwhile Access-Requests get no answer and accounting goes to the spool."])
    return EXIT_OK


def cmd_db_start(args, s):
    stack.db_start(s)
    emit(args, {"postgresql": True}, ["PostgreSQL started; the spool drains by itself."])
    return EXIT_OK


def cmd_status(args, s):
    st = stack.status(s)
    expected = s.workers if s.workers > 1 else 0
    up = bool(st["supervisor_pid"] and st["postgresql"] and st["freeradius_pid"]
              and len(st["workers"]) == expected and (st["web_pid"] or not st["web"]))
    role = "front end" if expected else "serving the gateways"
    lines = [
        f"supervisor: {'pid ' + str(st['supervisor_pid']) if st['supervisor_pid'] else 'not running'}",
        f"PostgreSQL: {'running' if st['postgresql'] else 'not running'}",
        f"FreeRADIUS {role}: "
        f"{'pid ' + str(st['freeradius_pid']) if st['freeradius_pid'] else 'not running'}"
        f" ({st['listen']} auth {st['auth_port']}, acct {st['acct_port']})"]
    if expected:
        running = ", ".join(f"{name} pid {pid}" for name, pid in sorted(st["workers"].items()))
        lines.append(f"FreeRADIUS workers: {len(st['workers'])} of {expected} running"
                     + (f" ({running})" if running else ""))
    lines.append("web portal: " + (
        "off (KONDGE_WEB_PORT=0)" if not st["web"] else
        f"{'pid ' + str(st['web_pid']) if st['web_pid'] else 'not running'} (http://{st['web']}/)"))
    dirs = stack.spool_dirs(s)
    st["spool"] = dict(spool.count(dirs), problems=spool.problems(dirs))
    lines.append(f"accounting spool: {st['spool']['spooled']} record(s) waiting, "
                 f"{st['spool']['quarantined']} quarantined")
    lines += [f"PROBLEM: {p}" for p in st["spool"]["problems"]]
    # gateways the server leaves out of its client list (a setting that breaks
    # its rule, written with psql): named in the directory file, without secrets
    st["gateways_not_served"] = gateways.read_skipped(s.gateway_directory)
    lines += ["PROBLEM: " + radius_config.Skipped(**g).line()
              for g in st["gateways_not_served"]]
    st["last_backup"] = backup.last_backup(s) if s.private_cluster else None
    if s.private_cluster:
        last = st["last_backup"]
        lines.append(f"last backup: {last['label']} ({last['type']}), finished {last['finished']}"
                     if last else f"last backup: none in {s.backup_repo} (kondge backup --full)")
    emit(args, st, lines)
    return (EXIT_OK if up and not st["spool"]["problems"] and not st["gateways_not_served"]
            else EXIT_UNAVAILABLE)


def cmd_unit(args, s):
    text = supervisor.systemd_unit(s)
    if args.install:
        path = Path(args.install)
        path.write_text(text)
        emit(args, {"installed": str(path)}, [
            f"written {path}; now: systemctl daemon-reload && systemctl enable --now "
            f"{path.stem}"])
    else:
        print(text, end="")
    return EXIT_OK
