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
import pwd
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg2

from . import config, demo, gateways, migrate
from .db import Database
from .errors import Unavailable
from .pins import load_key
from .service import Billing

PG_BIN = Path("/usr/lib/postgresql/15/bin")
FREERADIUS = shutil.which("freeradius") or "/usr/sbin/freeradius"
RADMIN = shutil.which("radmin") or "/usr/sbin/radmin"


class StackError(RuntimeError):
    pass


def _say(message):
    print(f"kondge: {message}", flush=True)


# --- PostgreSQL ----------------------------------------------------------------

def _pg_user():
    """initdb refuses root: as root the cluster belongs to 'postgres'."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise StackError("there is no 'postgres' user; install the postgresql package "
                         "(make setup)") from None


def _as_pg(argv, **kwargs):
    user = _pg_user()
    if user is not None:
        argv = ["runuser", "-u", "postgres", "--"] + argv
    return subprocess.run(argv, capture_output=True, text=True, **kwargs)


def _make_traversable(path: Path):
    """The postgres user must reach var/pg: add o+x where a parent lacks it."""
    for parent in reversed(path.parents):
        mode = parent.stat().st_mode
        if not mode & 0o001:
            _say(f"allowing the postgres user through {parent} (chmod o+x)")
            parent.chmod(mode | 0o001)


def ensure_cluster(s: config.Settings):
    data = s.pg_data
    if (data / "PG_VERSION").exists():
        return False
    pg_root = data.parent
    (pg_root / "run").mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    user = _pg_user()
    if user is not None:
        _make_traversable(pg_root)
        for path in (pg_root, pg_root / "run", data):
            os.chown(path, user.pw_uid, user.pw_gid)
    data.chmod(0o700)
    _say(f"creating the PostgreSQL cluster in {data}")
    result = _as_pg([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
                     "--auth-local=trust", "--auth-host=reject", "-E", "UTF8",
                     "--locale=C.UTF-8"])
    if result.returncode != 0:
        raise StackError(f"initdb failed: {result.stderr.strip()}")
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(
            "\n# Kondge billing: a private cluster reached through its socket only.\n"
            f"port = {s.pg_port}\n"
            "listen_addresses = ''\n"
            f"unix_socket_directories = '{pg_root / 'run'}'\n"
            "unix_socket_permissions = 0700\n"
            "max_connections = 200\n"
            "shared_buffers = 256MB\n"
            "synchronous_commit = on\n"
            "fsync = on\n")
    return True


def pg_running(s: config.Settings) -> bool:
    if not (s.pg_data / "PG_VERSION").exists():
        return False
    return _as_pg([str(PG_BIN / "pg_ctl"), "-D", str(s.pg_data), "status"]).returncode == 0


def start_postgres(s: config.Settings):
    if pg_running(s):
        return
    log = s.pg_data.parent / "postgres.log"
    result = _as_pg([str(PG_BIN / "pg_ctl"), "-D", str(s.pg_data), "-l", str(log), "-w",
                     "-t", "60", "-o", f"-p {s.pg_port}", "start"])
    if result.returncode != 0:
        tail = log.read_text()[-1500:] if log.exists() else ""
        raise StackError(f"PostgreSQL did not start: {result.stderr.strip()}\n{tail}")


def stop_postgres(s: config.Settings):
    if pg_running(s):
        _as_pg([str(PG_BIN / "pg_ctl"), "-D", str(s.pg_data), "-m", "fast", "-w", "-t", "60",
                "stop"])


def db_hold_flag(s: config.Settings) -> Path:
    return s.pg_data.parent / "held-down"


def db_held_down(s: config.Settings) -> bool:
    """An operator stopped the database on purpose: do not restart it."""
    return db_hold_flag(s).exists()


def db_stop(s: config.Settings):
    """Stop PostgreSQL for maintenance; FreeRADIUS keeps running and spools."""
    db_hold_flag(s).touch()
    stop_postgres(s)


def db_start(s: config.Settings):
    db_hold_flag(s).unlink(missing_ok=True)
    start_postgres(s)


def superuser_dsn(s: config.Settings) -> str:
    return f"host={s.pg_socket_dir} port={s.pg_port} dbname=postgres user=postgres"


# The owner (migrations, tariffs, gateways), the operators' role and the
# call path's role: sql/migrations/0007_roles.sql and sql/grants.sql.
ROLES = ("kondge", "kondge_operator", "kondge_radius")


def ensure_database(s: config.Settings):
    conn = psycopg2.connect(superuser_dsn(s))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for role in ROLES:
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                if not cur.fetchone():
                    cur.execute(f"CREATE ROLE {role} LOGIN")
            cur.execute("SELECT 1 FROM pg_database WHERE datname = 'kondge'")
            if not cur.fetchone():
                cur.execute("CREATE DATABASE kondge OWNER kondge")
    finally:
        conn.close()


def prepare_database(s: config.Settings, load_demo: bool = True):
    """Cluster, database, migrations and (into an empty database) the demo set."""
    ensure_cluster(s)
    start_postgres(s)
    ensure_database(s)
    migrate.apply(s.dsn, s.home / "sql" / "migrations", log=_say)
    if load_demo:
        db = Database(s.dsn)
        try:
            def load(cur):
                if demo.is_empty(cur):
                    return demo.load(cur, load_key(s.pin_key_file))
                return []
            lines = db.run(load)
        finally:
            db.close()
        if lines:
            _say("empty database: loaded the demo set")
            for line in lines:
                print("    " + line, flush=True)


# --- FreeRADIUS ----------------------------------------------------------------

def radius_env(s: config.Settings) -> dict:
    env = {k: v for k, v in os.environ.items()}
    site = s.home / ".venv" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    env.update({
        "KONDGE_HOME": str(s.home), "KONDGE_VAR": str(s.var),
        "KONDGE_RUN_DIR": str(s.radius_run_dir), "KONDGE_LOG_DIR": str(s.log_dir),
        "KONDGE_LISTEN": s.listen, "KONDGE_AUTH_PORT": str(s.auth_port),
        "KONDGE_ACCT_PORT": str(s.acct_port), "KONDGE_DSN": s.dsn,
        "KONDGE_RADIUS_DSN": s.radius_dsn, "KONDGE_QUEUE_SIZE": str(s.queue_size),
        "KONDGE_PIN_KEY": str(s.pin_key_file),
        "KONDGE_PYTHONPATH": f"{s.home / 'mods-config' / 'python'}:{s.home}:{site}",
    })
    return env


def render_clients(s: config.Settings, gateway_list) -> None:
    s.radius_run_dir.mkdir(parents=True, exist_ok=True)
    target = s.radius_run_dir / "clients.conf"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(gateways.render_clients(gateway_list))
    tmp.chmod(0o600)
    tmp.replace(target)


def spool_dir(s: config.Settings) -> Path:
    return s.radius_run_dir / "spool"


def fsync_spool(s: config.Settings):
    """FreeRADIUS's detail writer does not fsync: make spooled records durable."""
    try:
        names = list(spool_dir(s).iterdir())
    except FileNotFoundError:
        return
    for path in names:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue                    # read back and removed meanwhile
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
    """One FreeRADIUS process, run in the foreground as our child."""

    def __init__(self, s: config.Settings):
        self.s = s
        self.proc: subprocess.Popen | None = None

    @property
    def pid_file(self) -> Path:
        return self.s.radius_run_dir / "radiusd.pid"

    def running_pid(self) -> int | None:
        """The pid in our pid file if it is a live FreeRADIUS (not a reused number)."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"freeradius" in cmdline else None

    def _kill_leftover(self):
        pid = self.running_pid()
        if pid is None:
            return
        _say(f"stopping a FreeRADIUS left over from an earlier run (pid {pid})")
        _terminate(pid)
        self.pid_file.unlink(missing_ok=True)

    def start(self, timeout: float = 30.0):
        s = self.s
        self._kill_leftover()
        s.log_dir.mkdir(parents=True, exist_ok=True)
        s.radius_run_dir.mkdir(parents=True, exist_ok=True)
        log = s.log_dir / "radius.log"
        offset = log.stat().st_size if log.exists() else 0
        self.proc = subprocess.Popen(
            [FREERADIUS, "-f", "-d", str(s.home / "freeradius")], env=radius_env(s),
            stdin=subprocess.DEVNULL, stdout=open(s.log_dir / "radius.out", "ab"),
            stderr=subprocess.STDOUT)
        # In the foreground FreeRADIUS writes no pid file: we keep it, for
        # `status` and for stopping a server a dead supervisor left behind.
        self.pid_file.write_text(str(self.proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StackError(f"FreeRADIUS exited at start (code {self.proc.returncode}); "
                                 f"see {s.log_dir / 'radius.log'}:\n{_tail(log, offset)}")
            if "Ready to process requests" in _tail(log, offset, 100000):
                return
            time.sleep(0.05)
        self.stop()
        raise StackError(f"FreeRADIUS not ready after {timeout:.0f} s; see {log}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            _terminate(self.proc.pid, self.proc)
        self.proc = None
        self.pid_file.unlink(missing_ok=True)


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


def _tail(path: Path, offset: int, size: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return ""
    return data[-size:].decode(errors="replace")


# --- the supervisor ---------------------------------------------------------

class Supervisor:
    def __init__(self, s: config.Settings):
        self.s = s
        self.radius = Radius(s)
        self.db = Database(s.dsn, application_name="kondge-supervisor")
        self.known: dict[str, gateways.Gateway] = {}
        self.stopping = False
        self._billing: Billing | None = None

    def _load_gateways(self):
        return {gw.address: gw for gw in self.db.run(gateways.all_gateways)}

    def start(self):
        db_hold_flag(self.s).unlink(missing_ok=True)
        prepare_database(self.s)
        self.known = self._load_gateways()
        render_clients(self.s, self.known.values())
        self.radius.start()
        _say(f"FreeRADIUS ready on {self.s.listen}: auth {self.s.auth_port}, "
             f"acct {self.s.acct_port}; {len(self.known)} gateway(s)")

    def sync_gateways(self):
        """Apply gateway changes to the running FreeRADIUS."""
        current = self._load_gateways()
        if current == self.known:
            return
        added = [gw for a, gw in current.items() if a not in self.known]
        # only what FreeRADIUS's client list holds needs FreeRADIUS to change
        changed = any(a not in current or current[a].client_conf() != gw.client_conf()
                      for a, gw in self.known.items())
        render_clients(self.s, current.values())
        if not changed:
            for gw in added:
                single = self.s.radius_run_dir / f"client-{gw.id}.conf"
                single.write_text(gw.client_conf())
                single.chmod(0o600)
                radmin(self.s, f"add client file {single}")
                single.unlink()
                _say(f"gateway {gw.name} ({gw.address}) added to the running server")
        else:
            _say("gateways removed or changed: restarting FreeRADIUS to apply")
            self.radius.stop()
            self.radius.start()
        self.known = current

    def sweep(self):
        if db_held_down(self.s):
            return
        try:
            result = self.billing().sweep(self.s.session_grace)
        except Unavailable as exc:
            _say(f"sweep postponed: {exc}")
            return
        if any(result.values()):
            _say(f"sweep: {result['holds_dropped']} expired hold(s) dropped, "
                 f"{result['sessions_closed']} call(s) without Stop closed")

    def billing(self) -> Billing:
        if self._billing is None:
            self._billing = Billing.from_settings(self.s, self.db, gateways.all_gateways)
        return self._billing

    def loop(self):
        next_fsync = next_sweep = time.monotonic()
        next_sync = time.monotonic() + self.s.gateway_sync_seconds
        while not self.stopping:
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
                if not self.radius.alive():
                    _say("FreeRADIUS is not running: starting it")
                    self.radius.start()
                if time.monotonic() >= next_sync:
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

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
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
    Radius(s)._kill_leftover()
    stop_postgres(s)
    _say("stopped")
    return 0


def status(s: config.Settings) -> dict:
    return {"supervisor_pid": supervisor_pid(s), "postgresql": pg_running(s),
            "freeradius_pid": Radius(s).running_pid(), "listen": s.listen, "auth_port": s.auth_port,
            "acct_port": s.acct_port, "var": str(s.var)}
