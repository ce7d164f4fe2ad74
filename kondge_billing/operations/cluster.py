"""The private PostgreSQL cluster under var/pg: made, tuned, started, stopped.

`prepare_database` is what a start needs: the cluster (initdb on first
start), PostgreSQL running, the roles and the database, the migrations
(migrate.py), the limits on wrong PINs (pin_guard.py) and, into an empty
database, the demo set (demo.py). An
operator may hold the database down for maintenance (`db_stop`): the
supervisor then does not start it again until `db_start`.

PostgreSQL's server programs are found, not assumed (`pg_bin`):
KONDGE_PG_BIN if set; else the folder `pg_config --bindir` names, if it
holds them; else the newest /usr/lib/postgresql/<version>/bin that does,
preferring the version that made an existing cluster.
"""

import functools
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import psycopg2

from .. import config
from . import demo, pids, privileges
from ..store import migrate
from ..calls import pin_guard
from .console import say
from ..store.db import Database
from ..errors import StackError
from ..store.pins import load_key

PG_PROGRAMS = ("initdb", "pg_ctl")
PG_VERSIONS_ROOT = Path("/usr/lib/postgresql")     # Debian: one <version>/bin per major


# --- finding PostgreSQL -------------------------------------------------------

def has_pg_programs(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) and (directory / name).is_file()
               for name in PG_PROGRAMS)


def pg_config_bindir() -> Path | None:
    """What `pg_config --bindir` says, if there is a pg_config that answers."""
    program = shutil.which("pg_config")
    if program is None:
        return None
    try:
        result = subprocess.run([program, "--bindir"], capture_output=True, text=True,
                                timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    answer = result.stdout.strip()
    return Path(answer) if result.returncode == 0 and answer else None


def _version_key(directory: Path) -> tuple:
    """(15,) for /usr/lib/postgresql/15/bin, (9, 6) for 9.6; unnumbered last."""
    try:
        return tuple(int(part) for part in directory.parent.name.split("."))
    except ValueError:
        return ()


def find_pg_bin(override: Path | None = None, cluster_version: str | None = None,
                pg_config=pg_config_bindir, versions_root: Path = PG_VERSIONS_ROOT) -> Path:
    """The folder of PostgreSQL's initdb and pg_ctl.

    `override` (KONDGE_PG_BIN) is taken as it is, or refused. Otherwise, in
    this order, the first folder that holds both: <versions_root>/<cluster_version>/bin
    (the version an existing cluster was made with: another major version
    cannot start it), what `pg_config()` names, then <versions_root>/*/bin,
    newest version first."""
    if override is not None:
        if has_pg_programs(override):
            return override
        raise StackError(f"KONDGE_PG_BIN={override}: no {' and '.join(PG_PROGRAMS)} there; "
                         "set it to the folder of PostgreSQL's server programs or unset it")
    candidates = []
    if cluster_version:
        candidates.append(versions_root / cluster_version / "bin")
    named = pg_config()
    if named is not None:
        candidates.append(Path(named))
    candidates += sorted(versions_root.glob("*/bin"), key=_version_key, reverse=True)
    for directory in candidates:
        if has_pg_programs(directory):
            return directory
    raise StackError(
        f"PostgreSQL's server programs ({', '.join(PG_PROGRAMS)}) were found neither "
        f"where pg_config says nor in {versions_root}/<version>/bin: install the PostgreSQL "
        "server (Debian: apt-get install postgresql; 'make setup' does it as root), or set "
        "KONDGE_PG_BIN to the folder that holds them")


@functools.lru_cache(maxsize=8)
def _found_pg_bin(override: Path | None, cluster_version: str | None) -> Path:
    return find_pg_bin(override, cluster_version)


def pg_bin(s: config.Settings) -> Path:
    """The PostgreSQL programs this cluster is run with (found once per process)."""
    try:
        version = (s.pg_data / "PG_VERSION").read_text().strip() or None
    except OSError:
        version = None
    return _found_pg_bin(s.pg_bin, version)


# --- the cluster ----------------------------------------------------------------

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


def _pg_ctl(s: config.Settings, *args) -> subprocess.CompletedProcess:
    return _as_pg([str(pg_bin(s) / "pg_ctl"), "-D", str(s.pg_data), *args])


def ensure_cluster(s: config.Settings):
    data = s.pg_data
    if (data / "PG_VERSION").exists():
        return False
    initdb = pg_bin(s) / "initdb"
    pg_root = data.parent
    (pg_root / "run").mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    user = _pg_user()
    if user is not None:
        privileges.make_traversable(pg_root, "postgres")
        for path in (pg_root, pg_root / "run", data):
            os.chown(path, user.pw_uid, user.pw_gid)
    data.chmod(0o700)
    say(f"creating the PostgreSQL cluster in {data}")
    result = _as_pg([str(initdb), "-D", str(data), "-U", "postgres",
                     "--auth-local=peer", "--auth-host=reject", "-E", "UTF8",
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
    """Whether the cluster's postmaster runs: what `pg_ctl status` decides
    (postmaster.pid names a live process), read here, not by starting
    pg_ctl (under runuser, as root): the supervisor asks five times a
    second, and two processes started each time cost the machine about 2 %
    of its CPU under load (docs/performance.md). A pid file left by a crash
    whose pid another program took since is not taken for the postmaster."""
    pid = pids.running_pid(s.pg_data / "postmaster.pid")
    return pid is not None and pids.name(pid).startswith("postgres")


# Settings of the private cluster for the call path, rewritten at every
# start (kondge.conf, included from postgresql.conf), so that a cluster made
# by an earlier version gets them too. Durability is untouched: every
# commit is flushed before the gateway is answered, but a stage-1 login's
# record (radius_card.sql), which moves no money.
PG_TUNING = """# Written by kondge_billing/operations/cluster.py at every start: do not edit here.
# commit_delay stays 0: the workers' concurrent commits already share WAL
# flushes (2.4 syncs for 5 commits a call), and 200 or 1,000 microseconds
# of delay cost 10 % of the calls per second (measured with
# bench/profile_calls.py, 4 threads).
# Fewer checkpoints, so fewer full-page images in the WAL under steady load.
max_wal_size = 4GB
checkpoint_timeout = 15min
checkpoint_completion_target = 0.9
# The call path's statements are small: never compile them.
jit = off
# Every local user may reach the socket; pg_hba.conf (peer, with the map in
# pg_ident.conf) decides which roles each may be.
unix_socket_permissions = 0777
"""


def _write_owned(path: Path, text: str):
    """Write a file of the cluster's, atomically, as the cluster's owner's."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    user = _pg_user()
    if user is not None:
        os.chown(tmp, user.pw_uid, user.pw_gid)
    tmp.chmod(0o600)
    tmp.replace(path)


def write_pg_config(s: config.Settings) -> bool:
    """The cluster's settings and who may connect as which role (pg_hba.conf,
    pg_ident.conf), rewritten at every start; True if any of them changed."""
    conf = s.pg_data / "postgresql.conf"
    text = conf.read_text()
    if "include_if_exists = 'kondge.conf'" not in text:
        with open(conf, "a") as f:
            f.write("\n# Kondge billing's call-path settings (rewritten at every start)\n"
                    "include_if_exists = 'kondge.conf'\n")
    changed = False
    from . import backup        # backup.py runs pgBackRest on this cluster
    for name, wanted in (("kondge.conf", PG_TUNING + backup.archive_settings(s)),
                         ("pg_hba.conf", privileges.HBA),
                         ("pg_ident.conf", privileges.ident_map(s, ROLES))):
        path = s.pg_data / name
        try:
            if path.read_text() == wanted:
                continue
        except OSError:
            pass
        _write_owned(path, wanted)
        changed = True
    return changed


def start_postgres(s: config.Settings):
    """Start the cluster (or tell a running one its rewritten settings), and
    make the backup repository's stanza, which archived WAL waits for."""
    from . import backup
    if pg_running(s):
        if write_pg_config(s):          # who may connect changed: tell the running cluster
            _pg_ctl(s, "reload")
        backup.ensure_stanza(s)
        return
    write_pg_config(s)
    log = s.pg_data.parent / "postgres.log"
    result = _pg_ctl(s, "-l", str(log), "-w", "-t", "600", "-o", f"-p {s.pg_port}", "start")
    if result.returncode != 0:
        if pg_running(s):
            return      # started meanwhile by someone else (the supervisor, db-start)
        tail = log.read_text()[-1500:] if log.exists() else ""
        raise StackError(f"PostgreSQL did not start: {result.stderr.strip()}\n{tail}")
    backup.ensure_stanza(s)


def stop_postgres(s: config.Settings):
    if pg_running(s):
        _pg_ctl(s, "-m", "fast", "-w", "-t", "60", "stop")


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


# The owner (migrations, tariffs, gateways), the operators' role, the
# call path's role and the web portal's: sql/grants.sql.
ROLES = ("kondge", "kondge_operator", "kondge_radius", "kondge_web")


def ensure_roles(cur):
    """The service's roles, on a superuser's cursor."""
    for role in ROLES:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        if not cur.fetchone():
            cur.execute(f"CREATE ROLE {role} LOGIN")
    # a phone-number login hands the PIN key to the database in its statement:
    # none of the portal's statements is ever written to the server's log
    for setting, value in QUIET_WEB_ROLE:
        cur.execute(f"ALTER ROLE kondge_web SET {setting} = %s", (value,))


# The portal's statements kept out of PostgreSQL's log, whatever the
# cluster's own settings: an error's or a slow statement's text, or all.
QUIET_WEB_ROLE = (("log_min_error_statement", "panic"), ("log_min_duration_statement", "-1"),
                  ("log_statement", "none"))


def ensure_database(s: config.Settings):
    conn = psycopg2.connect(superuser_dsn(s))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            ensure_roles(cur)
            cur.execute("SELECT 1 FROM pg_database WHERE datname = 'kondge'")
            if not cur.fetchone():
                cur.execute("CREATE DATABASE kondge OWNER kondge")
    finally:
        conn.close()


def apply_pin_policy(s: config.Settings):
    """The KONDGE_PIN_* limits into the database, where the call path reads them."""
    db = Database(s.dsn)
    try:
        db.run(lambda cur: pin_guard.apply_policy(cur, s.pin_policy))
    finally:
        db.close()


def prepare_database(s: config.Settings, load_demo: bool = True):
    """Cluster, database, migrations and (into an empty database) the demo set.
    With KONDGE_DSN set the database is another's (another host, the HA
    topology): it is only migrated, its cluster is not run from here."""
    if s.private_cluster:
        ensure_cluster(s)
        start_postgres(s)
        ensure_database(s)
    try:
        migrate.apply(s.dsn, s.home / "sql" / "migrations", log=say)
    except migrate.MigrationError as exc:
        raise StackError(str(exc)) from None
    apply_pin_policy(s)
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
            say("empty database: loaded the demo set")
            for line in lines:
                print("    " + line, flush=True)
