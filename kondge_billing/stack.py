"""Running the service: the private PostgreSQL cluster and FreeRADIUS.

`kondge server run` is a small supervisor in the foreground: it creates the
cluster under var/ if there is none, starts PostgreSQL, applies migrations,
loads the demo set into an empty database, renders the gateways into
FreeRADIUS's client list and starts FreeRADIUS. While it runs it restarts
a part that died and applies gateway changes: a new gateway is added to the
running server through its control socket; a removed or changed one makes
it restart FreeRADIUS (about a second; gateways retransmit meanwhile).
`start` runs the same supervisor in the background; `stop` ends it and
both parts; `status` reports them.
"""

import os
import shutil
import secrets
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from . import config, gateways, radius_config
from .cluster import (PG_TUNING, ROLES, db_held_down, db_hold_flag, db_start, db_stop,  # noqa: F401
                      ensure_cluster, ensure_database, pg_bin, pg_running,
                      prepare_database, start_postgres, stop_postgres, superuser_dsn,
                      write_pg_tuning)
from .console import say as _say, tail as _tail
from .db import Database
from .errors import StackError, Unavailable
from .radius_config import WORKER_HOME_SERVER, workers_conf  # noqa: F401 (bench, callers)
from .service import Billing

FREERADIUS = shutil.which("freeradius") or "/usr/sbin/freeradius"
RADMIN = shutil.which("radmin") or "/usr/sbin/radmin"


# --- FreeRADIUS ----------------------------------------------------------------

def venv_site_packages(home: Path) -> Path:
    """The project venv's site-packages, for the Python FreeRADIUS embeds."""
    return home / ".venv" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


def radius_env(s: config.Settings) -> dict:
    env = {k: v for k, v in os.environ.items()}
    site = venv_site_packages(s.home)
    env.update({
        "KONDGE_HOME": str(s.home), "KONDGE_VAR": str(s.var),
        "KONDGE_RUN_DIR": str(s.radius_run_dir), "KONDGE_LOG_DIR": str(s.log_dir),
        "KONDGE_LOG_NAME": "radius.log", "KONDGE_BEHIND_FRONTEND": "no",
        "KONDGE_LISTEN": s.listen, "KONDGE_AUTH_PORT": str(s.auth_port),
        "KONDGE_ACCT_PORT": str(s.acct_port), "KONDGE_DSN": s.dsn,
        "KONDGE_RADIUS_DSN": s.radius_dsn, "KONDGE_QUEUE_SIZE": str(s.queue_size),
        "KONDGE_PIN_KEY": str(s.pin_key_file), "KONDGE_SHED_AFTER_MS": str(Decimal(s.shed_after_us) / 1000),
        "KONDGE_AUTH_WHEN_DB_DOWN": s.auth_when_db_down,
        "KONDGE_UNAUTHORISED_CALLS": s.unauthorised_calls,
        "KONDGE_PYTHONPATH": f"{s.home / 'mods-config' / 'python'}:{s.home}:{site}",
    })
    return env


_write_private = radius_config.write_private   # bench/ceilings.py uses it


def directory_file(s: config.Settings) -> Path:
    """The gateway directory every hook of this server reads (gateways.FileDirectory)."""
    return s.gateway_directory


def applied_file(s: config.Settings) -> Path:
    """The gateway revision the running server serves, written by the supervisor
    once the workers and the front end both have it."""
    return s.radius_run_dir / "gateways.applied"


def render_clients(s: config.Settings, gateway_list, revision: int = 0, removed=()) -> None:
    """The gateways for FreeRADIUS: the workers' directory first, then the
    front end's client list (with the secrets, readable by its owner only)."""
    s.radius_run_dir.mkdir(parents=True, exist_ok=True)
    gateway_list = list(gateway_list)
    gateways.write_directory(directory_file(s), revision, gateway_list, removed)
    radius_config.write_private(s.radius_run_dir / "clients.conf",
                                radius_config.clients_conf(gateway_list))


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


def worker_dirs(s: config.Settings) -> list[Path]:
    """The run directories of the worker processes there are (or were)."""
    return sorted(s.radius_run_dir.glob("worker-*"))


def spool_dirs(s: config.Settings) -> list[Path]:
    """Where accounting waits while the database is down: one spool per
    process that runs the hook (the single server, or each worker)."""
    return [s.radius_run_dir / "spool"] + [d / "spool" for d in worker_dirs(s)]


def fsync_spool(s: config.Settings):
    """FreeRADIUS's detail writer does not fsync: make spooled records durable."""
    for directory in spool_dirs(s):
        try:
            names = list(directory.iterdir())
        except FileNotFoundError:
            continue
        for path in names:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue                # read back and removed meanwhile
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def radmin(s: config.Settings, command: str) -> str:
    result = subprocess.run([RADMIN, "-f", str(s.radius_run_dir / "control.sock"), "-e", command],
                            capture_output=True, text=True, timeout=10)
    if result.returncode != 0 or "ERROR" in result.stdout + result.stderr:
        raise StackError(f"radmin {command!r}: {(result.stdout + result.stderr).strip()}")
    return result.stdout


class Radius:
    """One FreeRADIUS process, run in the foreground as our child.

    `name` is "freeradius" for the process the gateways talk to (the single
    server, or the front end with conf="frontend") and "worker-N" for a
    worker; each has its own run directory (pid, control socket, clients,
    spool) and log file."""

    def __init__(self, s: config.Settings, name: str = "freeradius", conf: str = "radiusd",
                 env: dict | None = None):
        self.s = s
        self.name = name
        self.conf = conf
        self.env = dict(env or {})
        self.run_dir = s.radius_run_dir if name == "freeradius" else s.radius_run_dir / name
        self.log_name = "radius.log" if name == "freeradius" else f"radius-{name}.log"
        self.proc: subprocess.Popen | None = None
        self._offset = 0

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "radiusd.pid"

    @property
    def log(self) -> Path:
        return self.s.log_dir / self.log_name

    def running_pid(self) -> int | None:
        """The pid in our pid file if it is a live FreeRADIUS (not a reused number)."""
        return _radius_pid(self.pid_file)

    def _kill_leftover(self):
        pid = self.running_pid()
        if pid is None:
            return
        _say(f"stopping a FreeRADIUS left over from an earlier run (pid {pid})")
        _terminate(pid)
        self.pid_file.unlink(missing_ok=True)

    def launch(self):
        """Start the process; `wait_ready` waits until it serves."""
        s = self.s
        self._kill_leftover()
        s.log_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        env = radius_env(s)
        env.update({"KONDGE_RUN_DIR": str(self.run_dir), "KONDGE_LOG_NAME": self.log_name})
        env.update(self.env)
        argv = [FREERADIUS, "-f", "-d", str(s.home / "freeradius")]
        if self.conf != "radiusd":
            argv += ["-n", self.conf]
        out = self.log.with_suffix(".out")
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=open(out, "ab"), stderr=subprocess.STDOUT)
        # In the foreground FreeRADIUS writes no pid file: we keep it, for
        # `status` and for stopping a server a dead supervisor left behind.
        self.pid_file.write_text(str(self.proc.pid))

    def wait_ready(self, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StackError(f"FreeRADIUS ({self.name}) exited at start (code "
                                 f"{self.proc.returncode}); see {self.log}:\n"
                                 f"{_tail(self.log, self._offset)}")
            if "Ready to process requests" in _tail(self.log, self._offset, 100000):
                return
            time.sleep(0.05)
        self.stop()
        raise StackError(f"FreeRADIUS ({self.name}) not ready after {timeout:.0f} s; "
                         f"see {self.log}")

    def start(self, timeout: float = 30.0):
        self.launch()
        self.wait_ready(timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            _terminate(self.proc.pid, self.proc)
        self.proc = None
        self.pid_file.unlink(missing_ok=True)


def _radius_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"freeradius" in cmdline else None


def _free_port_pair(host: str = "127.0.0.1") -> int:
    """A UDP port p with p + 1 free too (a worker's auth and acct ports)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
            a.bind((host, 0))
            port = a.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                try:
                    b.bind((host, port + 1))
                except OSError:
                    continue
            return port
    raise StackError("no two consecutive free UDP ports on loopback for a worker")


class RadiusSet:
    """The FreeRADIUS processes of the service.

    KONDGE_WORKERS=1: one process serves the gateways and runs the hook.
    KONDGE_WORKERS=N>=2: N workers run the hook, each on its own loopback
    ports, behind a front end that serves the gateways and proxies to the
    least busy live worker. The workers share a secret with the front end,
    made afresh at each start and kept in files only root can read."""

    def __init__(self, s: config.Settings):
        self.s = s
        self.workers: list[Radius] = []
        if s.workers == 1:
            self.front = Radius(s)
        else:
            self.front = Radius(s, conf="frontend")

    def all(self) -> list[Radius]:
        return self.workers + [self.front]

    def _prepare_workers(self):
        s = self.s
        secret = secrets.token_urlsafe(24)
        for name, pid in radius_pids(s).items():
            if name != "freeradius":
                _say(f"stopping a FreeRADIUS worker left over from an earlier run (pid {pid})")
                _terminate(pid)
        self.workers = []
        for i in range(1, s.workers + 1):
            port = _free_port_pair()
            worker = Radius(s, f"worker-{i}", env={
                "KONDGE_LISTEN": "127.0.0.1", "KONDGE_AUTH_PORT": str(port),
                "KONDGE_ACCT_PORT": str(port + 1), "KONDGE_BEHIND_FRONTEND": "yes"})
            worker.port = port
            radius_config.write_private(worker.run_dir / "clients.conf",
                                        radius_config.frontend_client(secret))
            self.workers.append(worker)
        radius_config.write_private(s.radius_run_dir / "workers.conf", workers_conf(
            [(f"kondge-{w.name}", w.port) for w in self.workers], secret))

    def start(self):
        if self.s.workers > 1:
            self._prepare_workers()
            for worker in self.workers:
                worker.launch()
            try:
                for worker in self.workers:
                    worker.wait_ready()
            except StackError:
                self.stop()
                raise
        self.front.start()

    def restart_dead(self):
        """Start again whichever process died (a worker keeps its ports)."""
        for proc in self.all():
            if not proc.alive():
                _say(f"FreeRADIUS ({proc.name}) is not running: starting it")
                proc.start()
                if proc is not self.front and self.front.alive():
                    self._declare_alive(proc)

    def _declare_alive(self, worker):
        """Tell the front end a restarted worker serves again, rather than
        let it wait for Status-Server answers."""
        for port in (worker.port, worker.port + 1):
            try:
                radmin(self.s, f"set home_server state 127.0.0.1 {port} udp alive")
            except (StackError, OSError, subprocess.SubprocessError) as exc:
                _say(f"could not declare {worker.name} alive to the front end ({exc}); "
                     f"it will be used again once it answers a Status-Server")
                return

    def restart_front(self):
        self.front.stop()
        self.front.start()

    def stop(self):
        for proc in [self.front] + self.workers:
            proc.stop()


def front_end_view(s: config.Settings) -> dict:
    """{port: state} of the front end's workers (home servers), from radmin."""
    states = {}
    for line in radmin(s, "show home_server list").splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[1].isdigit():
            states[int(fields[1])] = fields[4]
    return states


def radius_pids(s: config.Settings) -> dict:
    """{name: pid} of the FreeRADIUS processes running under s.var (by pid file)."""
    found = {"freeradius": _radius_pid(s.radius_run_dir / "radiusd.pid")}
    for directory in worker_dirs(s):
        found[directory.name] = _radius_pid(directory / "radiusd.pid")
    return {name: pid for name, pid in found.items() if pid is not None}


def _terminate(pid: int, proc: subprocess.Popen | None = None, grace: float = 5.0):
    """SIGTERM, then SIGKILL: 3.2.1 sometimes hangs on SIGTERM."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return
        else:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if proc is not None:
        proc.wait(timeout=10)


# --- the supervisor ---------------------------------------------------------

class Supervisor:
    def __init__(self, s: config.Settings):
        self.s = s
        self.radius = RadiusSet(s)
        self.db = Database(s.dsn, application_name="kondge-supervisor")
        self.known: dict[str, gateways.Gateway] = {}
        self.revision = -1
        self.stopping = False
        self.sync_now = False
        self._billing: Billing | None = None

    def start(self):
        db_hold_flag(self.s).unlink(missing_ok=True)
        prepare_database(self.s)
        self.revision, self.known, removed = gateway_snapshot(self.db)
        render_clients(self.s, self.known.values(), self.revision, removed)
        self.radius.start()
        gateways.write_directory(applied_file(self.s), self.revision, ())
        behind = (f", {len(self.radius.workers)} worker processes behind a front end"
                  if self.radius.workers else "")
        _say(f"FreeRADIUS ready on {self.s.listen}: auth {self.s.auth_port}, "
             f"acct {self.s.acct_port}; {len(self.known)} gateway(s){behind}")

    def sync_gateways(self):
        """Apply gateway changes to the running FreeRADIUS: the workers'
        directory first (every worker serves the new revision from its next
        request), then the front end's client list; then say which revision
        is served (applied_file), which `kondge gateways ...` waits for."""
        revision = self.db.run(gateways.table_revision)
        if revision == self.revision:
            return
        revision, current, removed = gateway_snapshot(self.db)
        added = [gw for a, gw in current.items() if a not in self.known]
        # only what FreeRADIUS's client list holds needs FreeRADIUS to change
        client = radius_config.gateway_client
        changed = any(a not in current or client(current[a]) != client(gw)
                      for a, gw in self.known.items())
        render_clients(self.s, current.values(), revision, removed)
        if not changed:
            for gw in added:
                single = self.s.radius_run_dir / f"client-{gw.id}.conf"
                radius_config.write_private(single, client(gw))
                radmin(self.s, f"add client file {single}")
                single.unlink()
                _say(f"gateway {gw.name} ({gw.address}) added to the running server")
        else:
            _say("gateways removed or changed: restarting FreeRADIUS to apply")
            self.radius.restart_front()
        self.known, self.revision = current, revision
        gateways.write_directory(applied_file(self.s), revision, ())

    def sweep(self):
        if db_held_down(self.s):
            return
        try:
            result = self.billing().sweep(self.s.session_grace)
        except Unavailable as exc:
            _say(f"sweep postponed: {exc}")
            return
        if any(result.values()):
            _say(f"sweep: {result['holds_lapsed']} unstarted hold(s) lapsed, "
                 f"{result['sessions_closed']} call(s) without Stop closed")

    def billing(self) -> Billing:
        if self._billing is None:
            self._billing = Billing.from_settings(self.s, self.db)
        return self._billing

    def loop(self):
        next_fsync = next_sweep = time.monotonic()
        next_sync = time.monotonic() + self.s.gateway_sync_seconds
        while not self.stopping:
            if not self.sync_now:
                time.sleep(0.2)
            if self.stopping:
                break
            try:
                if not pg_running(self.s) and not db_held_down(self.s):
                    _say("PostgreSQL is not running: starting it")
                    start_postgres(self.s)
                if time.monotonic() >= next_fsync:
                    next_fsync = time.monotonic() + 1.0
                    fsync_spool(self.s)
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.s.sweep_seconds
                    self.sweep()
                self.radius.restart_dead()
                if self.sync_now or time.monotonic() >= next_sync:
                    self.sync_now = False
                    next_sync = time.monotonic() + self.s.gateway_sync_seconds
                    self.sync_gateways()
            except Exception as exc:  # noqa: BLE001 - keep supervising
                _say(f"supervisor: {exc}")
                time.sleep(1)

    def shutdown(self):
        self.radius.stop()
        self.db.close()
        stop_postgres(self.s)


def run_foreground(s: config.Settings, ready_file: Path | None = None) -> int:
    sup = Supervisor(s)

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
            _say("running; Ctrl-C stops FreeRADIUS and PostgreSQL")
        sup.loop()
        return 0
    except StackError as exc:
        _say(str(exc))
        return 1
    finally:
        _say("stopping")
        sup.shutdown()
        s.supervisor_pid_file.unlink(missing_ok=True)
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)
        _say("stopped")


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
        _say(f"already running (supervisor pid {pid}); it restarts any part that stopped")
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
            sys.stdout.write(_tail(log_path, offset, 100000))
            _say(f"started in the background (supervisor pid {proc.pid}); "
                 f"log {log_path}")
            return 0
        if proc.poll() is not None:
            sys.stdout.write(_tail(log_path, offset, 100000))
            _say("the service did not start; see above")
            return 1
        time.sleep(0.1)
    _say(f"the service did not become ready in {timeout:.0f} s; see {log_path}")
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
    for name, pid in radius_pids(s).items():
        _say(f"stopping FreeRADIUS ({name}, pid {pid}) left over from an earlier run")
        _terminate(pid)
    stop_postgres(s)
    _say("stopped")
    return 0


def status(s: config.Settings) -> dict:
    workers = radius_pids(s)
    return {"supervisor_pid": supervisor_pid(s), "postgresql": pg_running(s),
            "freeradius_pid": workers.pop("freeradius", None), "workers": workers,
            "listen": s.listen, "auth_port": s.auth_port,
            "acct_port": s.acct_port, "var": str(s.var)}
