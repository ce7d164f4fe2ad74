"""The HA topology in miniature, on one machine: a pg_auto_failover monitor,
a primary and a standby PostgreSQL kept by pg_auto_failover's keepers
(synchronous replication, automatic failover), and two RADIUS server sets
(a supervisor each: front end and workers) on two loopback addresses,
against the same database through a multi-host connection string.

Nothing here replicates, promotes or rewinds a database: pg_auto_failover
does (Debian's postgresql-15-auto-failover and pg-auto-failover-cli).
This module makes the clusters with `pg_autoctl create`, writes who may
connect (pg_hba.conf, scram passwords for every role that connects over
TCP, pgpass files readable only by the user who needs each), runs one
`pg_autoctl run` per cluster and one supervisor per RADIUS set, and reads
the monitor's view of the nodes.

Layout under $KONDGE_VAR/ha: monitor/, node1/, node2/ (data folders),
secrets/ (passwords and pgpass files), set-a/ and set-b/ (each RADIUS
set's own KONDGE_VAR; each runs a web portal too), pg_autoctl's
configuration and state in config/ and state/, logs in log/.
"""

import dataclasses
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.extras

from . import backup, cluster, privileges
from .pids import alive, running_pid
from .. import config
from .console import say
from ..errors import StackError

PG_AUTOCTL = "/usr/bin/pg_autoctl"
NODES = ("node1", "node2")
SETS = ("set-a", "set-b")
FORMATION = "default"
# the roles pg_auto_failover itself connects as, over TCP
INTERNAL_ROLES = ("autoctl_node", "pgautofailover_monitor", "pgautofailover_replicator")
APP_ROLES = cluster.ROLES

# The monitor's failure detection, in milliseconds (pg_auto_failover's GUCs):
# a node is unhealthy once its keeper has not reported for 5 s and a health
# check failed; a primary that cannot be told to step down is given 5 s.
MONITOR_TUNING = {
    "pgautofailover.health_check_period": "1000",
    "pgautofailover.health_check_timeout": "1000",
    "pgautofailover.health_check_max_retries": "1",
    "pgautofailover.health_check_retry_delay": "500",
    "pgautofailover.node_considered_unhealthy_timeout": "5000",
    "pgautofailover.primary_demote_timeout": "5000",
}


@dataclass(frozen=True)
class Topology:
    s: config.Settings

    @property
    def root(self) -> Path:
        return self.s.var / "ha"

    def port(self, name: str) -> int:
        return self.s.ha_pg_port + (0 if name == "monitor" else NODES.index(name) + 1)

    def data(self, name: str) -> Path:
        return self.root / name

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    def pgpass(self, who: str) -> Path:
        return self.secrets / f"{who}.pgpass"

    @property
    def monitor_uri(self) -> str:
        return (f"postgres://autoctl_node@127.0.0.1:{self.port('monitor')}/pg_auto_failover"
                "?sslmode=disable")

    def dsn(self, user: str, who: str) -> str:
        """The multi-host connection string the service uses: whichever node takes writes."""
        ports = ",".join(str(self.port(n)) for n in NODES)
        return (f"host={','.join('127.0.0.1' for _ in NODES)} port={ports} dbname=kondge "
                f"user={user} passfile={self.pgpass(who)} target_session_attrs=read-write "
                "connect_timeout=2")

    def set_var(self, name: str) -> Path:
        return self.root / name

    def set_env(self, name: str) -> dict:
        """The environment of RADIUS set `name`: its own KONDGE_VAR and
        address, the same ports, the database through the multi-host DSN."""
        listen = self.s.ha_listen[SETS.index(name)]
        env = dict(os.environ, KONDGE_VAR=str(self.set_var(name)), KONDGE_LISTEN=listen,
                   KONDGE_DATABASE="external", KONDGE_HOME=str(self.s.home),
                   KONDGE_PIN_KEY=str(self.s.pin_key_file),
                   KONDGE_AUTH_PORT=str(self.s.auth_port), KONDGE_ACCT_PORT=str(self.s.acct_port),
                   KONDGE_DSN=self.dsn("kondge", "owner"),
                   KONDGE_RADIUS_DSN=self.dsn("kondge_radius", "radius"),
                   # each set's portal on the set's address, KONDGE_WEB_PORT (0: none)
                   KONDGE_WEB_LISTEN=listen, KONDGE_WEB_PORT=str(self.s.web_port),
                   KONDGE_WEB_DSN=self.dsn("kondge_web", "web"))
        return env

    def backup_settings(self) -> config.Settings:
        """pgBackRest's view: both nodes in one stanza, a repository of the topology's."""
        return dataclasses.replace(self.s, var=self.root, backup_repo=self.root / "backup")

    def backup_nodes(self) -> list:
        return [backup.Node(self.data(n), self.port(n), Path("/var/run/postgresql"))
                for n in NODES]


# --- running pg_autoctl --------------------------------------------------------------

def autoctl_env(t: Topology) -> dict:
    pg_bin = cluster.pg_bin(t.s)
    return dict(os.environ, XDG_CONFIG_HOME=str(t.root / "config"),
                XDG_DATA_HOME=str(t.root / "state"), PGPASSFILE=str(t.pgpass("postgres")),
                PATH=f"{pg_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}")


def as_postgres(argv) -> list:
    return (["runuser", "-u", "postgres", "--"] + argv) if os.geteuid() == 0 else argv


def autoctl(t: Topology, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(as_postgres([PG_AUTOCTL, *args]), env=autoctl_env(t),
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-6:])
        raise StackError(f"pg_autoctl {' '.join(args[:2])} failed:\n{tail}")
    return result


def answers(t: Topology, name: str) -> bool:
    superuser(t, name).close()
    return True


def superuser(t: Topology, name: str):
    conn = psycopg2.connect(host="/var/run/postgresql", port=t.port(name), user="postgres",
                            dbname="pg_auto_failover" if name == "monitor" else "postgres",
                            connect_timeout=3)
    conn.autocommit = True
    return conn


# --- who may connect -------------------------------------------------------------------

def passwords(t: Topology) -> dict:
    """Every role's password, made once (secrets/passwords.json, root's, 0600)."""
    path = t.secrets / "passwords.json"
    if path.exists():
        return json.loads(path.read_text())
    t.secrets.mkdir(parents=True, exist_ok=True)
    t.secrets.chmod(0o711)
    made = {role: secrets.token_urlsafe(24) for role in INTERNAL_ROLES + APP_ROLES}
    path.touch(mode=0o600)
    path.write_text(json.dumps(made))
    return made


def write_pgpass_files(t: Topology):
    """A pgpass file per user, with the passwords that user needs only:
    postgres (pg_auto_failover's roles), the owner's (kondge, kondge_operator,
    for the supervisors and the tool), FreeRADIUS's (kondge_radius), the web
    portal's (kondge_web)."""
    pw = passwords(t)
    account = privileges.radius_account(t.s)
    web = privileges.web_account(t.s)
    postgres = cluster._pg_user()
    for who, roles, owner in (
            ("postgres", INTERNAL_ROLES, postgres and (postgres.pw_uid, postgres.pw_gid)),
            ("owner", ("kondge", "kondge_operator", "kondge_radius"), None),
            ("radius", ("kondge_radius",), account and (account.uid, account.gid)),
            ("web", ("kondge_web",), web and (web.uid, web.gid))):
        path = t.pgpass(who)
        path.write_text("".join(f"*:*:*:{role}:{pw[role]}\n" for role in roles))
        path.chmod(0o600)
        if owner:
            os.chown(path, *owner)


def hba(t: Topology) -> str:
    return ("# Written by kondge_billing/operations/ha.py: do not edit here.\n"
            "# Local: by OS user (peer, map in pg_ident.conf). TCP: scram passwords.\n"
            f"local all all peer map={privileges.MAP}\n"
            "host pg_auto_failover autoctl_node 127.0.0.1/32 scram-sha-256\n"
            "host all pgautofailover_monitor 127.0.0.1/32 scram-sha-256\n"
            "host replication pgautofailover_replicator 127.0.0.1/32 scram-sha-256\n"
            "host all pgautofailover_replicator 127.0.0.1/32 scram-sha-256\n"
            "host kondge kondge,kondge_operator,kondge_radius,kondge_web 127.0.0.1/32 "
            "scram-sha-256\n")


def write_node_config(t: Topology, name: str):
    """pg_hba.conf, pg_ident.conf and kondge.conf of one cluster (the call
    path's tuning; on the nodes the WAL archive too)."""
    data = t.data(name)
    conf = data / "postgresql.conf"
    if "include_if_exists = 'kondge.conf'" not in conf.read_text():
        with open(conf, "a") as f:
            f.write("\n# Kondge billing (written by kondge_billing/operations/ha.py)\n"
                    "include_if_exists = 'kondge.conf'\n")
    extra = "listen_addresses = '127.0.0.1'\n"
    if name != "monitor":
        extra += cluster.PG_TUNING + backup.archive_settings(t.backup_settings())
    for file, text in (("pg_hba.conf", hba(t)),
                       ("pg_ident.conf", privileges.ident_map(t.s, APP_ROLES)),
                       ("kondge.conf", "# Written by kondge_billing/operations/ha.py\n" + extra)):
        path = data / file
        path.write_text(text)
        user = cluster._pg_user()
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)
        path.chmod(0o600)


def set_passwords(t: Topology, name: str, roles):
    pw = passwords(t)
    conn = superuser(t, name)
    try:
        with conn.cursor() as cur:
            for role in roles:
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                if cur.fetchone():
                    cur.execute(f"ALTER ROLE {role} PASSWORD %s", (pw[role],))
            cur.execute("SELECT pg_reload_conf()")
    finally:
        conn.close()


# --- the processes -----------------------------------------------------------------------

def pid_file(t: Topology, name: str) -> Path:
    return t.root / f"{name}.pid"


def launch_keeper(t: Topology, name: str):
    """`pg_autoctl run` for one cluster, in the background, logged."""
    t.log_dir.mkdir(parents=True, exist_ok=True)
    log = open(t.log_dir / f"{name}.log", "ab")
    proc = subprocess.Popen(as_postgres([PG_AUTOCTL, "run", "--pgdata", str(t.data(name))]),
                            env=autoctl_env(t), stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    pid_file(t, name).write_text(str(proc.pid))
    return proc


def autoctl_pid_file(t: Topology, name: str) -> Path:
    """pg_autoctl's own pid file for a cluster's data folder, where it keeps
    it (XDG_RUNTIME_DIR, else /tmp, followed by the data folder's path)."""
    runtime = autoctl_env(t).get("XDG_RUNTIME_DIR") or "/tmp"
    return (Path(runtime) / "pg_autoctl" / str(t.data(name)).lstrip("/")
            / "pg_autoctl.pid")


def autoctl_pid(t: Topology, name: str) -> int | None:
    """The pg_autoctl that runs for a cluster's data folder, whoever started
    it: by pg_autoctl's own pid file (its first line), if that process runs."""
    pid = running_pid(autoctl_pid_file(t, name))
    try:
        # a pid file left by a keeper killed outright may name a reused pid
        if pid is not None and b"pg_autoctl" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    except OSError:
        pass
    return None


def keeper_pid(t: Topology, name: str) -> int | None:
    """The keeper of a cluster: the one this topology launched (its pid
    file), else a pg_autoctl found running for the same data folder (one
    launched before its pid file was written again, or by hand), which is
    adopted: its pid written to the pid file, so that it is stopped like
    any other and never started twice."""
    pid = running_pid(pid_file(t, name))
    if pid is not None:
        return pid
    pid = autoctl_pid(t, name)
    if pid is not None:
        pid_file(t, name).write_text(str(pid))
    return pid


def keeper_pids(t: Topology) -> dict:
    return {name: keeper_pid(t, name) for name in ("monitor",) + NODES}


def postmaster_pid(t: Topology, name: str) -> int | None:
    try:
        return int((t.data(name) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def node_states(t: Topology) -> list[dict]:
    """The monitor's view: each node's name, port, reported and goal state, health, LSN."""
    conn = superuser(t, "monitor")
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute("""SELECT nodename AS name, nodeport AS port,
                                  reportedstate::text AS state, goalstate::text AS goal,
                                  health, reportedlsn::text AS lsn, reporttime
                             FROM pgautofailover.node ORDER BY nodeid""")
            return [dict(r) for r in cur.fetchall()]
    finally:
        conn.close()


def primary_name(t: Topology) -> str | None:
    for node in node_states(t):
        if node["state"] in ("primary", "wait_primary", "single") and node["goal"] == node["state"]:
            return node["name"]
    return None


def wait_for(what: str, check, timeout: float):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (psycopg2.Error, OSError) as exc:
            last = exc
        time.sleep(0.2)
    raise StackError(f"{what} did not happen within {timeout:.0f} s" + (f" ({last})" if last else ""))


def both_in_sync(t: Topology) -> bool:
    states = {n["name"]: n["state"] for n in node_states(t)}
    return sorted(states.values()) == ["primary", "secondary"] and all(
        n["goal"] == n["state"] for n in node_states(t))


# --- up: make what is missing, start what is not running ----------------------------------

def create(t: Topology):
    """Make the monitor and the two nodes, once (pg_autoctl create ...)."""
    for path in (t.root, t.root / "config", t.root / "state", t.log_dir):
        path.mkdir(parents=True, exist_ok=True)
    user = cluster._pg_user()
    if user is not None:
        privileges.make_traversable(t.root, "postgres")
        for path in (t.root, t.root / "config", t.root / "state"):
            os.chown(path, user.pw_uid, user.pw_gid)
    write_pgpass_files(t)
    common = ["--pgctl", str(cluster.pg_bin(t.s) / "pg_ctl"), "--no-ssl", "--skip-pg-hba"]
    if not (t.data("monitor") / "PG_VERSION").exists():
        say("creating the pg_auto_failover monitor")
        autoctl(t, "create", "monitor", "--pgdata", str(t.data("monitor")),
                "--pgport", str(t.port("monitor")), "--hostname", "127.0.0.1", *common)
        write_node_config(t, "monitor")
    if keeper_pid(t, "monitor") is None:
        launch_keeper(t, "monitor")
    wait_for("the monitor answering", lambda: answers(t, "monitor"), 60)
    set_passwords(t, "monitor", ("autoctl_node",))
    conn = superuser(t, "monitor")
    with conn.cursor() as cur:
        for name, value in MONITOR_TUNING.items():
            cur.execute(f"ALTER SYSTEM SET {name} = %s", (value,))
        cur.execute("SELECT pg_reload_conf()")
    conn.close()
    for name in NODES:
        if (t.data(name) / "PG_VERSION").exists():
            continue
        # the first node made is the primary; one made beside it (after a
        # restore, or its folder lost) a standby copied from it
        first = not any((t.data(n) / "PG_VERSION").exists() for n in NODES)
        say(f"creating {name} (pg_auto_failover: "
            f"{'the primary' if first else 'a standby, copied from the primary'})")
        autoctl(t, "create", "postgres", "--pgdata", str(t.data(name)),
                "--pgport", str(t.port(name)), "--hostname", "127.0.0.1",
                "--listen", "127.0.0.1", "--name", name, "--dbname", "kondge",
                "--monitor", t.monitor_uri, "--replication-quorum", "true",
                "--candidate-priority", "50", *common, timeout=900)
        write_node_config(t, name)
        # the keeper gives the replication role this password whenever it
        # (re)creates it; the standby's primary_conninfo carries it
        autoctl(t, "config", "set", "--pgdata", str(t.data(name)), "replication.password",
                passwords(t)["pgautofailover_replicator"])
        if first:
            launch_keeper(t, name)
            wait_for(f"{name} as the primary",
                     lambda: primary_name(t) == name and answers(t, name), 120)
            prepare_primary(t)
        else:
            launch_keeper(t, name)
            wait_for("the standby in sync", lambda: both_in_sync(t), 300)


def prepare_primary(t: Topology):
    """On the first primary: the application's roles and database, every
    password (they replicate to the standby), and the backup stanza."""
    conn = superuser(t, NODES[0])
    try:
        with conn.cursor() as cur:
            cluster.ensure_roles(cur)
            cur.execute("ALTER DATABASE kondge OWNER TO kondge")
    finally:
        conn.close()
    set_passwords(t, NODES[0], INTERNAL_ROLES + APP_ROLES)
    if t.s.wal_archive:
        bs = t.backup_settings()
        backup.write_conf(bs, t.backup_nodes())
        if not backup.stanza_exists(bs):
            backup.pgbackrest(bs, "stanza-create", timeout=120)


def hold_flag(t: Topology, name: str) -> Path:
    return t.root / f"{name}.held"


def held(t: Topology, name: str) -> bool:
    """An operator took the node out (kondge ha hold): the runner leaves it stopped."""
    return hold_flag(t, name).exists()


def hold(t: Topology, name: str):
    """Stop a node's keeper and PostgreSQL and keep them stopped."""
    hold_flag(t, name).touch()
    stop_keepers(t, only=(name,))


def release(t: Topology, name: str):
    hold_flag(t, name).unlink(missing_ok=True)
    start_keepers(t, only=(name,))


def start_keepers(t: Topology, only=None):
    for name in only or (("monitor",) + NODES):
        if keeper_pid(t, name) is None:
            launch_keeper(t, name)


def stop_keepers(t: Topology, timeout: float = 60, only=None):
    """Stop every pg_autoctl (each stops its PostgreSQL), standby first: the
    keeper this topology launched and any other pg_autoctl running for the
    same data folder (a folder is never removed or restored under one)."""
    for name in only or (tuple(reversed(NODES)) + ("monitor",)):
        launched = running_pid(pid_file(t, name))
        pids = {p for p in (launched, autoctl_pid(t, name)) if p is not None}
        if pids:
            # pg_autoctl's own stop (signalling runuser would orphan PostgreSQL)
            subprocess.run(as_postgres([PG_AUTOCTL, "stop", "--pgdata", str(t.data(name))]),
                           env=autoctl_env(t), capture_output=True, timeout=60)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and any(alive(p) for p in pids):
                time.sleep(0.1)
            for pid in pids:
                if alive(pid):
                    _kill_keeper(pid, launched)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and any(alive(p) for p in pids):
                time.sleep(0.1)
        if postmaster_pid(t, name) and (t.data(name) / "postmaster.pid").exists():
            cluster._as_pg([str(cluster.pg_bin(t.s) / "pg_ctl"), "-D", str(t.data(name)),
                            "-m", "fast", "-w", "-t", "60", "stop"])
        pid_file(t, name).unlink(missing_ok=True)


def _kill_keeper(pid: int, launched: int | None):
    """SIGKILL a keeper that would not stop: with its process group when that
    is the group its launch began (runuser's, or pg_autoctl's own), else
    the process alone (one started by hand shares its shell's group)."""
    try:
        group = os.getpgid(pid)
    except OSError:
        return
    try:
        if group in (pid, launched) and group != os.getpgrp():
            os.killpg(group, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def kondge_cmd(t: Topology, name: str, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kondge_billing.cli", *args],
                          env=t.set_env(name), cwd=str(t.s.home), capture_output=True,
                          text=True, timeout=timeout)


def start_sets(t: Topology):
    for name in SETS:
        t.set_var(name).mkdir(parents=True, exist_ok=True)
        result = kondge_cmd(t, name, "server", "start")
        if result.returncode != 0:
            raise StackError(f"RADIUS {name} did not start:\n{result.stdout[-2000:]}"
                             f"{result.stderr[-1000:]}")
        say(f"RADIUS {name} serves on {t.set_env(name)['KONDGE_LISTEN']}")


def stop_sets(t: Topology):
    for name in SETS:
        if t.set_var(name).exists():
            kondge_cmd(t, name, "server", "stop", timeout=120)


# --- status ------------------------------------------------------------------------------

def replication(t: Topology, primary: str) -> list[dict]:
    """The primary's standbys: sync state and how far behind each replays."""
    conn = superuser(t, primary)
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute("""SELECT application_name AS standby, state, sync_state,
                                  pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint
                                      AS replay_lag_bytes,
                                  extract(epoch FROM replay_lag)::float8 AS replay_lag_seconds
                             FROM pg_stat_replication""")
            return [dict(r) for r in cur.fetchall()]
    finally:
        conn.close()


def status(t: Topology) -> dict:
    keepers = keeper_pids(t)
    out = {"keepers": keepers, "nodes": [], "replication": [], "primary": None,
           "runner_pid": running_pid(t.root / "runner.pid"), "sets": {}, "last_backup": None}
    try:
        out["nodes"] = node_states(t)
        out["primary"] = primary_name(t)
        if out["primary"]:
            out["replication"] = replication(t, out["primary"])
    except psycopg2.Error as exc:
        out["monitor_error"] = str(exc).strip()
    for name in SETS:
        if t.set_var(name).exists():
            result = kondge_cmd(t, name, "server", "status", "--json", timeout=60)
            try:
                out["sets"][name] = dict(json.loads(result.stdout), up=result.returncode == 0)
            except ValueError:
                out["sets"][name] = {"up": False}
    if backup.stanza_exists(t.backup_settings()):
        out["last_backup"] = backup.last_backup(t.backup_settings())
    return out


# --- the runner: keeps the keepers and the sets running -------------------------------------

#: a node whose keeper died is started again once the other node serves as
#: primary (it then rejoins as a standby: pg_auto_failover rewinds it), or
#: after this long if no failover came (the other could not take over)
REJOIN_AFTER = 60.0
#: a keeper that dies within this long of its launch failed to start: the
#: next launch waits twice as long as the last (from 1 s, at most MAX_BACKOFF),
#: and the runner says why, from the keeper's log
QUICK_DEATH = 10.0
MAX_BACKOFF = 30.0


class Runner:
    def __init__(self, t: Topology):
        self.t = t
        self.dead_since: dict[str, float] = {}
        self.stopping = False
        #: each cluster's last launch by the runner, and the wait before the next
        self.launched: dict[str, float] = {}
        self.backoff: dict[str, float] = {}
        self.clock = time.monotonic

    def _may_launch(self, name: str) -> bool:
        """False while a keeper that died soon after its launch waits out its backoff."""
        at = self.launched.get(name)
        if at is None:
            return True
        now = self.clock()
        if name not in self.backoff and now - at < QUICK_DEATH:
            self.backoff[name] = 1.0
            say(f"{name}'s keeper stopped {now - at:.1f} s after its start; "
                f"its log {self.t.log_dir / (name + '.log')} says:\n{log_tail(self.t, name)}")
        wait = self.backoff.get(name, 0.0)
        return now - at >= wait

    def _launch(self, name: str):
        if name in self.backoff:       # set only after a launch that died at once
            self.backoff[name] = min(MAX_BACKOFF, self.backoff[name] * 2)
        launch_keeper(self.t, name)
        self.launched[name] = self.clock()

    def _running(self, name: str) -> bool:
        if keeper_pid(self.t, name) is None:
            return False
        at = self.launched.get(name)
        if at is not None and self.clock() - at >= QUICK_DEATH:
            self.backoff.pop(name, None)     # it stayed up: the next death starts afresh
            self.launched.pop(name, None)
        return True

    def tick(self):
        t = self.t
        if not self._running("monitor") and self._may_launch("monitor"):
            say("the pg_auto_failover monitor stopped: starting it")
            self._launch("monitor")
        for name in NODES:
            if self._running(name) or held(t, name):
                self.dead_since.pop(name, None)
                continue
            since = self.dead_since.setdefault(name, self.clock())
            other = [n for n in NODES if n != name][0]
            try:
                other_primary = primary_name(t) == other
            except psycopg2.Error:
                other_primary = False
            if ((other_primary or self.clock() - since > REJOIN_AFTER)
                    and self._may_launch(name)):
                say(f"{name}'s keeper is gone; {other} "
                    f"{'serves as primary' if other_primary else 'did not take over'}: "
                    f"starting {name} again (it rejoins as "
                    f"{'a standby' if other_primary else 'it was'})")
                self._launch(name)
                self.dead_since.pop(name, None)

    def loop(self):
        while not self.stopping:
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - keep watching
                say(f"ha runner: {exc}")
            time.sleep(0.5)


def log_tail(t: Topology, name: str, lines: int = 5) -> str:
    try:
        text = (t.log_dir / f"{name}.log").read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join("  " + line for line in text.strip().splitlines()[-lines:])


def run_foreground(t: Topology) -> int:
    runner = Runner(t)

    def on_signal(_signum, _frame):
        runner.stopping = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    (t.root / "runner.pid").write_text(str(os.getpid()))
    try:
        runner.loop()
    finally:
        (t.root / "runner.pid").unlink(missing_ok=True)
    return 0


def start_runner(t: Topology):
    if running_pid(t.root / "runner.pid"):
        return
    log = open(t.log_dir / "runner.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "kondge_billing.cli", "ha", "run"],
                            cwd=str(t.s.home), stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    wait_for("the HA runner", lambda: running_pid(t.root / "runner.pid") == proc.pid, 30)


def stop_runner(t: Topology):
    pid = running_pid(t.root / "runner.pid")
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        wait_for("the HA runner stopping", lambda: running_pid(t.root / "runner.pid") is None, 30)


def refresh_access(t: Topology):
    """Who may connect, written again on every node that exists (a topology
    made by an older version gets the current rules), and reloaded where it runs."""
    for name in NODES:
        if not (t.data(name) / "PG_VERSION").exists():
            continue
        write_node_config(t, name)
        try:
            conn = superuser(t, name)
        except psycopg2.Error:
            continue                # not running: it reads them when it starts
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_reload_conf()")
        finally:
            conn.close()


def up(t: Topology):
    """Everything of the topology that is missing is made, and started."""
    create(t)
    start_keepers(t)
    wait_for("a primary", lambda: primary_name(t) is not None, 120)
    refresh_access(t)
    start_runner(t)
    start_sets(t)


def down(t: Topology):
    stop_runner(t)
    stop_sets(t)
    stop_keepers(t)
