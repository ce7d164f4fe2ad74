"""The supervisor: runs the service's parts and keeps them running.

`kondge server run` is this supervisor in the foreground: it prepares the
database (cluster.py), renders the gateways into FreeRADIUS's client list
and starts the FreeRADIUS processes (radius_processes.py). While it runs it
restarts a part that died, makes spooled accounting durable, runs the sweep
it was handed every KONDGE_SWEEP_SECONDS, and applies gateway changes: a new
gateway is added to the running server through its control socket; a
removed or changed one makes it restart the front end (about a second;
gateways retransmit meanwhile). `start` runs the same supervisor in the
background; `stop` ends it and every part; `status` reports them.

The supervisor knows nothing of billing: what its sweep does is given to
it (stack.py hands it the billing service's).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from ..calls import cdrs
from .. import config
from ..store import gateways
from . import radius_config
from .cluster import (db_held_down, db_hold_flag, pg_running, prepare_database,
                      start_postgres, stop_postgres)
from .console import say, tail
from ..store.db import Database
from ..errors import StackError, Unavailable
from .radius_processes import RadiusSet, fsync_spool, radius_pids, radmin, render_clients, terminate
from .web_process import WebPortal, check_users, web_pid

# A sweep: called every KONDGE_SWEEP_SECONDS while the database is not held
# down; says what it did in a few words ("" when it did nothing) and raises
# Unavailable when the database cannot be reached (it is tried again later).
Sweep = Callable[[], str]


def applied_file(s: config.Settings) -> Path:
    """The gateway revision the running server serves, written by the supervisor
    once the workers and the front end both have it."""
    return s.radius_run_dir / "gateways.applied"


def gateway_snapshot(db) -> tuple[int, dict, list]:
    """(revision, {address: gateway}, removed gateways) of the gateway table, read
    in one transaction so that the three agree."""
    def read(cur):
        return (gateways.table_revision(cur),
                {gw.address: gw for gw in gateways.all_gateways(cur)},
                gateways.removed_gateways(cur))
    return db.transaction(read)


def apply_gateway_change(s: config.Settings, revision: int, timeout: float = 30.0) -> bool | None:
    """After a gateway change committed at `revision`: ask the running
    supervisor to apply it now, and wait until the server serves it.

    None: no server runs under this KONDGE_VAR (it serves the change when it
    starts); True: served; False: not served within `timeout`."""
    pid = supervisor_pid(s)
    if pid is None:
        return None
    try:
        os.kill(pid, signal.SIGUSR1)
    except ProcessLookupError:
        return None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        applied = gateways.read_revision(applied_file(s))
        if applied is not None and applied >= revision:
            return True
        if supervisor_pid(s) is None:
            return None
        time.sleep(0.05)
    return False


class Supervisor:
    """The loop of `kondge server run`, on its own database connection `db`."""

    def __init__(self, s: config.Settings, db: Database, sweep: Sweep,
                 chores: tuple = ()):
        self.s = s
        self.radius = RadiusSet(s)
        self.web = WebPortal(s)
        self.db = db
        self.sweep_work = sweep
        #: more work of the same kind as the sweep: (name, every seconds, Sweep)
        self.chores = list(chores)
        self._next_chore = {name: 0.0 for name, _every, _work in chores}
        #: the client section of each gateway FreeRADIUS serves, by address
        self.sections: dict[str, str] = {}
        self.skipped: tuple = ()
        self.revision = -1
        self.state = None                 # gateways.table_state when last applied
        self.stopping = False
        self.sync_now = False

    def start(self):
        db_hold_flag(self.s).unlink(missing_ok=True)
        check_users(self.s)
        prepare_database(self.s)
        # the database, not the call path's role, decides whether a call
        # nobody authorised is charged (sql/functions/radius_settle.sql)
        self.db.run(lambda cur: cdrs.set_unauthorised_calls(cur, self.s.unauthorised_calls))
        served = gateways.read_revision(applied_file(self.s))
        self.state = self.db.run(gateways.table_state)
        self.revision, known, removed = gateway_snapshot(self.db)
        self._render(known, self.revision, removed)
        if self.radius.adopt():
            # what an earlier supervisor left running serves on; it missed
            # the gateway changes made while no supervisor ran
            if served != self.revision:
                say("gateways changed while the service was unsupervised: restarting the "
                    "front end to apply them")
                self.radius.restart_front()
        else:
            self.radius.start()
        gateways.write_directory(applied_file(self.s), self.revision, ())
        if not self.web.adopt():
            self.web.start()
        behind = (f", {len(self.radius.workers)} worker processes behind a front end"
                  if self.radius.workers else "")
        say(f"FreeRADIUS ready on {self.s.listen}: auth {self.s.auth_port}, "
            f"acct {self.s.acct_port}; {len(self.sections)} gateway(s){behind}"
            + (f"; {len(self.skipped)} not served (kondge server status)"
               if self.skipped else ""))

    def _render(self, current: dict, revision: int, removed) -> dict:
        """Write the gateways for FreeRADIUS (render_clients); say which are
        newly not served, and why. The client sections served before, which
        the caller compares with the new ones."""
        rendered = render_clients(self.s, current.values(), revision, removed)
        for item in rendered.skipped:
            if item not in self.skipped:
                say(item.line())
        before, self.sections, self.skipped = self.sections, rendered.sections, rendered.skipped
        return before

    def sync_gateways(self):
        """Apply gateway changes to the running FreeRADIUS: the workers'
        directory first (every worker serves the new revision from its next
        request), then the front end's client list; then say which revision
        is served (applied_file), which `kondge gateways ...` waits for."""
        state = self.db.run(gateways.table_state)
        if state == self.state:
            return
        revision, current, removed = gateway_snapshot(self.db)
        before = self._render(current, revision, removed)
        # only what FreeRADIUS's client list holds needs FreeRADIUS to change
        added = [a for a in self.sections if a not in before]
        changed = any(self.sections.get(a) != section for a, section in before.items())
        if not changed:
            try:
                for address in added:
                    self._add_client(current[address])
            except (StackError, OSError, subprocess.SubprocessError) as exc:
                say(f"the running server did not take a new gateway ({exc}): restarting "
                    "the front end to apply the whole client list")
                changed = True
        if changed:
            say("gateways removed or changed: restarting FreeRADIUS to apply")
            self.radius.restart_front()
        self.revision, self.state = revision, state
        gateways.write_directory(applied_file(self.s), revision, ())

    def _add_client(self, gw):
        """One new gateway into the running front end's client list (radmin)."""
        single = self.s.radius_run_dir / f"client-{gw.id}.conf"
        radius_config.write_private(single, self.sections[gw.address])
        try:
            radmin(self.s, f"add client file {single}")
        finally:
            single.unlink(missing_ok=True)
        say(f"gateway {gw.name} ({gw.address}) added to the running server")

    def sweep(self):
        if db_held_down(self.s):
            return
        try:
            done = self.sweep_work()
        except Unavailable as exc:
            say(f"sweep postponed: {exc}")
            return
        if done:
            say(f"sweep: {done}")

    def run_chores(self):
        """Each chore that is due, as the sweep is run (not while the database
        is held down; quietly later when it cannot be reached)."""
        now = time.monotonic()
        for name, every, work in self.chores:
            if now < self._next_chore[name] or db_held_down(self.s):
                continue
            self._next_chore[name] = now + every
            try:
                done = work()
            except Unavailable:
                continue
            if done:
                say(f"{name}: {done}")

    def loop(self):
        next_fsync = next_sweep = time.monotonic()
        next_sync = time.monotonic() + self.s.gateway_sync_seconds
        while not self.stopping:
            if not self.sync_now:
                time.sleep(0.2)
            if self.stopping:
                break
            try:
                if (self.s.private_cluster and not pg_running(self.s)
                        and not db_held_down(self.s)):
                    say("PostgreSQL is not running: starting it")
                    start_postgres(self.s)
                if time.monotonic() >= next_fsync:
                    next_fsync = time.monotonic() + 1.0
                    fsync_spool(self.s)
                self.run_chores()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.s.sweep_seconds
                    self.sweep()
                self.radius.restart_dead()
                self.radius.revive_tcp()
                self.web.restart_dead()
                if self.sync_now or time.monotonic() >= next_sync:
                    self.sync_now = False
                    next_sync = time.monotonic() + self.s.gateway_sync_seconds
                    self.sync_gateways()
            except Exception as exc:  # noqa: BLE001 - keep supervising
                say(f"supervisor: {exc}")
                time.sleep(1)

    def shutdown(self):
        self.web.stop()
        self.radius.stop()
        self.db.close()
        if self.s.private_cluster:
            stop_postgres(self.s)


def run_foreground(s: config.Settings, db: Database, sweep: Sweep,
                   ready_file: Path | None = None, chores: tuple = ()) -> int:
    """`kondge server run`: supervise until SIGINT or SIGTERM; SIGUSR1 asks
    for the gateway table to be applied now. `ready_file` is written once
    the service serves (start_background waits for it)."""
    sup = Supervisor(s, db, sweep, chores)

    def on_signal(signum, _frame):
        sup.stopping = True

    def on_gateway_change(signum, _frame):
        sup.sync_now = True         # `kondge gateways ...` committed a change

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGUSR1, on_gateway_change)
    s.var.mkdir(parents=True, exist_ok=True)
    s.supervisor_pid_file.write_text(str(os.getpid()))
    try:
        sup.start()
        if ready_file is not None:
            ready_file.write_text(str(os.getpid()))
        if not sup.stopping:
            say("running; Ctrl-C stops FreeRADIUS and PostgreSQL")
        sup.loop()
        return 0
    except StackError as exc:
        say(str(exc))
        return 1
    finally:
        say("stopping")
        sup.shutdown()
        s.supervisor_pid_file.unlink(missing_ok=True)
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)
        say("stopped")


def supervisor_pid(s: config.Settings) -> int | None:
    try:
        pid = int(s.supervisor_pid_file.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def start_background(s: config.Settings, timeout: float = 120.0) -> int:
    pid = supervisor_pid(s)
    if pid is not None:
        say(f"already running (supervisor pid {pid}); it restarts any part that stopped")
        return 0
    s.log_dir.mkdir(parents=True, exist_ok=True)
    ready = s.var / "supervisor.ready"
    ready.unlink(missing_ok=True)
    log_path = s.log_dir / "supervisor.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    log = open(log_path, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "kondge_billing.cli", "server", "run",
                             "--ready-file", str(ready)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=str(s.home))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.exists():
            sys.stdout.write(tail(log_path, offset, 100000))
            say(f"started in the background (supervisor pid {proc.pid}); "
                f"log {log_path}")
            return 0
        if proc.poll() is not None:
            sys.stdout.write(tail(log_path, offset, 100000))
            say("the service did not start; see above")
            return 1
        time.sleep(0.1)
    say(f"the service did not become ready in {timeout:.0f} s; see {log_path}")
    return 1


def stop_background(s: config.Settings, timeout: float = 60.0) -> int:
    pid = supervisor_pid(s)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and supervisor_pid(s) == pid:
            time.sleep(0.1)
        if supervisor_pid(s) == pid:
            os.kill(pid, signal.SIGKILL)
            s.supervisor_pid_file.unlink(missing_ok=True)
    # Whatever a dead supervisor left behind.
    if web_pid(s) is not None:
        say(f"stopping the web portal (pid {web_pid(s)}) left over from an earlier run")
        terminate(web_pid(s))
    for name, pid in radius_pids(s).items():
        say(f"stopping FreeRADIUS ({name}, pid {pid}) left over from an earlier run")
        terminate(pid)
    if s.private_cluster:
        stop_postgres(s)
    say("stopped")
    return 0


def status(s: config.Settings) -> dict:
    workers = radius_pids(s)
    return {"supervisor_pid": supervisor_pid(s),
            "postgresql": pg_running(s) if s.private_cluster else database_answers(s),
            "freeradius_pid": workers.pop("freeradius", None), "workers": workers,
            "listen": s.listen, "auth_port": s.auth_port,
            "acct_port": s.acct_port, "web_pid": web_pid(s),
            "web": f"{s.web_listen}:{s.web_port}" if s.web_port else None, "var": str(s.var)}


def database_answers(s: config.Settings) -> bool:
    """A database the service does not run (KONDGE_DSN) takes a connection."""
    db = Database(s.dsn, application_name="kondge-status", deadline_ms=5000)
    try:
        db.run(lambda cur: cur.execute("SELECT 1"))
        return True
    except Unavailable:
        return False
    finally:
        db.close()


def systemd_unit(s: config.Settings) -> str:
    """A systemd unit for the service, as FreeRADIUS and PostgreSQL have on
    Debian: started at boot, the supervisor restarted if it dies. Only the
    supervisor is signalled when the unit stops (it stops the parts itself);
    after a crash of the supervisor alone the parts go on serving, and the
    supervisor started again takes them over (no blackout)."""
    kondge = s.home / ".venv" / "bin" / "kondge"
    settings = "".join(f"Environment={name}={value}\n" for name, value in (
        ("KONDGE_HOME", s.home), ("KONDGE_VAR", s.var)))
    return f"""[Unit]
Description=Kondge billing: prepaid calling cards behind FreeRADIUS (supervisor, PostgreSQL, FreeRADIUS)
Documentation=file://{s.home}/docs/operations.md
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
WorkingDirectory={s.home}
{settings}# more settings (ports, listen address, workers): KONDGE_*=... lines
EnvironmentFile=-/etc/default/kondge
ExecStart={kondge} server run
# SIGTERM to the supervisor alone: it stops FreeRADIUS and PostgreSQL itself
KillMode=process
Restart=on-failure
RestartSec=2
TimeoutStopSec=120

[Install]
WantedBy=multi-user.target
"""
