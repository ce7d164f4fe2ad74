"""Backups with pgBackRest: continuous WAL archiving, full and differential
backups, restore to the end of the archive or to a chosen moment, and a
restore drill into a scratch cluster.

Nothing here copies a database file itself: pgBackRest does (Debian's
`pgbackrest` package). This module writes its configuration
($KONDGE_VAR/pgbackrest/pgbackrest.conf: the repository, KONDGE_BACKUP_REPO,
and the cluster or clusters of the stanza `kondge`), runs it as the
cluster's owner, and reads what it reports.

The PIN key is not in the database, so it is not in a backup either: keep
it apart (docs/operations.md, Backups).
"""

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import psycopg2
import psycopg2.extras

from . import cluster, privileges
from .. import config
from .console import say
from ..errors import StackError

STANZA = "kondge"
PGBACKREST = shutil.which("pgbackrest") or "/usr/bin/pgbackrest"


@dataclass(frozen=True)
class Node:
    """One PostgreSQL cluster of the stanza: its data folder, port and socket folder."""
    data: Path
    port: int
    socket_dir: Path


def conf_dir(s: config.Settings) -> Path:
    return s.var / "pgbackrest"


def conf_file(s: config.Settings) -> Path:
    return conf_dir(s) / "pgbackrest.conf"


def private_nodes(s: config.Settings) -> list[Node]:
    return [Node(s.pg_data, s.pg_port, s.pg_socket_dir)]


def render_conf(s: config.Settings, nodes: list[Node]) -> str:
    """pgbackrest.conf: the repository and the stanza's clusters."""
    lines = ["# Written by kondge_billing/operations/backup.py: do not edit here (docs/operations.md, Backups).",
             "[global]",
             f"repo1-path={s.backup_repo}",
             # two full backups and the WAL to restore any moment since the older
             "repo1-retention-full=2",
             "compress-type=lz4",
             "process-max=2",
             "start-fast=y",
             "delta=y",
             f"log-path={conf_dir(s) / 'log'}",
             f"lock-path={conf_dir(s) / 'lock'}",
             "log-level-console=warn",
             "log-level-file=info",
             "",
             f"[{STANZA}]"]
    for i, node in enumerate(nodes, 1):
        lines += [f"pg{i}-path={node.data}", f"pg{i}-port={node.port}",
                  f"pg{i}-socket-path={node.socket_dir}", f"pg{i}-user=postgres"]
    if len(nodes) > 1:
        lines.append("backup-standby=n")
    return "\n".join(lines) + "\n"


def archive_settings(s: config.Settings) -> str:
    """The postgresql.conf lines that send every finished WAL file to the repository."""
    if not s.wal_archive:
        return "archive_mode = off\n"
    return ("# Every finished WAL file goes to the pgBackRest repository (kondge backup):\n"
            "archive_mode = on\n"
            f"archive_command = '{PGBACKREST} --config={conf_file(s)} --stanza={STANZA} "
            "archive-push %p'\n"
            # an idle minute still closes its WAL file, so a restore reaches it
            "archive_timeout = 60\n")


def write_conf(s: config.Settings, nodes: list[Node] | None = None):
    """The configuration, and the folders pgBackRest writes, the cluster owner's."""
    nodes = nodes or private_nodes(s)
    for path in (conf_dir(s), conf_dir(s) / "log", conf_dir(s) / "lock", s.backup_repo):
        path.mkdir(parents=True, exist_ok=True)
    user = cluster._pg_user()
    if user is not None:
        privileges.make_traversable(s.backup_repo, "postgres")
        privileges.make_traversable(conf_dir(s), "postgres")
        for path in (conf_dir(s), conf_dir(s) / "log", conf_dir(s) / "lock", s.backup_repo):
            os.chown(path, user.pw_uid, user.pw_gid)
    s.backup_repo.chmod(0o750)
    path = conf_file(s)
    text = render_conf(s, nodes)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.chmod(0o644)
        tmp.replace(path)


def pgbackrest(s: config.Settings, *args, timeout: float | None = None,
               check: bool = True) -> subprocess.CompletedProcess:
    """Run pgBackRest on the stanza as the cluster's owner."""
    argv = [PGBACKREST, f"--config={conf_file(s)}", f"--stanza={STANZA}", *args]
    result = cluster._as_pg(argv, timeout=timeout)
    if check and result.returncode != 0:
        message = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise StackError(f"pgbackrest {args[0]} failed: {' '.join(message[-3:])}")
    return result


def stanza_exists(s: config.Settings) -> bool:
    return (s.backup_repo / "backup" / STANZA / "backup.info").exists()


def ensure_stanza(s: config.Settings, nodes: list[Node] | None = None):
    """The repository's stanza, made once the cluster runs (WAL waits for it).
    Without `nodes`, the clusters the configuration names (the HA topology's
    two, once it wrote them)."""
    if not s.wal_archive:
        return
    write_conf(s, nodes or current_nodes(s))
    if not stanza_exists(s):
        pgbackrest(s, "stanza-create", timeout=120)


# --- backups -------------------------------------------------------------------

def run_backup(s: config.Settings, kind: str) -> dict:
    """A full or differential backup of the running cluster; the new backup's record."""
    if not s.wal_archive:
        raise StackError("KONDGE_WAL_ARCHIVE=off: a backup without the WAL archive cannot be "
                         "restored; unset it and restart the service")
    ensure_stanza(s)
    pgbackrest(s, "backup", f"--type={kind}", timeout=None)
    return backups(s)[-1]


def info(s: config.Settings) -> dict:
    """What pgBackRest knows of the stanza (its `info --output=json`)."""
    write_conf(s, current_nodes(s))
    result = pgbackrest(s, "info", "--output=json", timeout=60)
    stanzas = json.loads(result.stdout or "[]")
    return stanzas[0] if stanzas else {}


def _when(epoch) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


def backups(s: config.Settings) -> list[dict]:
    """The backups in the repository, oldest first, as plain records."""
    rows = []
    for b in info(s).get("backup", []):
        rows.append({
            "label": b["label"], "type": b["type"],
            "started": _when(b["timestamp"]["start"]),
            "finished": _when(b["timestamp"]["stop"]),
            "seconds": b["timestamp"]["stop"] - b["timestamp"]["start"],
            "database_bytes": b["info"]["size"],
            "repository_bytes": b["info"]["repository"]["delta"],
            "wal_start": b["archive"]["start"], "wal_stop": b["archive"]["stop"]})
    return rows


def last_backup(s: config.Settings) -> dict | None:
    """The newest backup's record, or None (no repository, no backup, pgBackRest failed)."""
    if not stanza_exists(s):
        return None
    try:
        rows = backups(s)
    except (StackError, OSError, ValueError, subprocess.SubprocessError):
        return None
    return rows[-1] if rows else None


def current_nodes(s: config.Settings) -> list[Node]:
    """The clusters the configuration names (the HA topology writes its own)."""
    try:
        text = conf_file(s).read_text()
    except OSError:
        return private_nodes(s)
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    nodes, i = [], 1
    while f"pg{i}-path" in values:
        nodes.append(Node(Path(values[f"pg{i}-path"]), int(values[f"pg{i}-port"]),
                          Path(values[f"pg{i}-socket-path"])))
        i += 1
    return nodes or private_nodes(s)


# --- restore ---------------------------------------------------------------------

def target_text(moment: datetime) -> str:
    """A moment as pgBackRest's --target takes it (UTC, to the microsecond)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def restore_args(s: config.Settings, moment: datetime | None) -> list[str]:
    """pgBackRest's restore options: the end of the archive, or `moment`
    from the newest backup that had finished a full second before it."""
    if moment is None:
        return ["--type=default"]
    before = [b for b in info(s).get("backup", [])
              if b["timestamp"]["stop"] < moment.timestamp() - 1]
    if not before:
        raise StackError(f"no backup had finished by {moment.isoformat()}: restore to a later "
                         "moment ('kondge backup list' shows when each finished)")
    return ["--type=time", f"--target={target_text(moment)}", "--target-action=promote",
            f"--set={before[-1]['label']}"]


def flush_archive(s: config.Settings, start: bool = False):
    """Close the cluster's current WAL file and wait until it is archived
    (pgBackRest's `check`), so that a restore reaches the last commit. With
    `start`, a stopped cluster is started for it: the WAL of its last
    minutes is in its own folder only (a restore replaces that folder)."""
    if start and not cluster.pg_running(s) and (s.pg_data / "PG_VERSION").exists():
        try:
            cluster.start_postgres(s)
        except StackError as exc:
            say(f"the cluster does not start ({exc}); the restore gets what the archive "
                "holds, without the WAL of its last minutes")
    if cluster.pg_running(s):
        archive_current_wal(s)


def archive_current_wal(s: config.Settings):
    """pgBackRest's `check` on the running primary of `s`: its current WAL file
    closed and archived; said (not raised) if that fails."""
    result = pgbackrest(s, "check", timeout=120, check=False)
    if result.returncode != 0:
        say("the last WAL file could not be archived: the restore gets what the archive "
            f"holds ({result.stderr.strip()[-300:]})")


def wait_until_serving(dsn: str, timeout: float = 600.0):
    """Wait until the cluster at dsn accepts writes (recovery over)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            conn = psycopg2.connect(dsn, connect_timeout=2)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_is_in_recovery()")
                    if not cur.fetchone()[0]:
                        return
                    last = "still recovering"
            finally:
                conn.close()
        except psycopg2.Error as exc:
            last = str(exc).strip()
        time.sleep(0.1)
    raise StackError(f"the restored cluster did not come up in {timeout:.0f} s ({last})")


def restore(s: config.Settings, moment: datetime | None = None) -> dict:
    """Restore the private cluster from the repository, to the end of the
    archive or to `moment`, and start it again. The supervisor, if it runs,
    keeps FreeRADIUS serving meanwhile (accounting goes to the spool, which
    it replays once the database answers)."""
    if not stanza_exists(s) or not backups(s):
        raise StackError(f"no backup in {s.backup_repo}: make one first (kondge backup --full)")
    began = time.monotonic()
    options = restore_args(s, moment)
    flush_archive(s, start=True)
    cluster.db_stop(s)              # held down: the supervisor must not start it meanwhile
    try:
        if not (s.pg_data / "PG_VERSION").exists():
            s.pg_data.mkdir(parents=True, exist_ok=True)
            user = cluster._pg_user()
            if user is not None:
                os.chown(s.pg_data, user.pw_uid, user.pw_gid)
            s.pg_data.chmod(0o700)
        pgbackrest(s, "restore", *options, timeout=None)
        restored = time.monotonic()
        cluster.db_start(s)
        wait_until_serving(cluster.superuser_dsn(s))
    except BaseException:
        say("the restore did not finish: the database is held down; see above, then "
            "'kondge restore' again or 'kondge server db-start'")
        raise
    return {"target": moment.isoformat() if moment else "end of archive",
            "restore_seconds": round(restored - began, 1),
            "serving_seconds": round(time.monotonic() - began, 1)}


# --- the drill: restore into a scratch cluster and check the books ---------------

BOOKS = """
SELECT (SELECT count(*) FROM kondge.card) AS cards,
       (SELECT count(*) FROM kondge.cdr) AS cdrs,
       (SELECT max(created_at) FROM kondge.cdr) AS last_cdr,
       (SELECT coalesce(sum(charge), 0) FROM kondge.cdr) AS charges,
       (SELECT coalesce(-sum(amount), 0) FROM kondge.ledger_entry WHERE kind = 'call')
           AS call_debits,
       (SELECT count(*) FROM kondge.v_balance_mismatch) AS balance_mismatches
"""


def books(dsn: str) -> dict:
    """The figures a restore is checked by: counts, the last CDR, charges
    against ledger debits, cards whose balance is not their ledger's sum."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(BOOKS)
            return dict(cur.fetchone())
    finally:
        conn.close()


def books_balance(figures: dict) -> bool:
    return (figures["balance_mismatches"] == 0
            and figures["charges"] == figures["call_debits"])


def drill(s: config.Settings, port: int, moment: datetime | None = None,
          keep: bool = False) -> dict:
    """Restore the newest backup (plus WAL, to the end or to `moment`) into a
    scratch cluster under $KONDGE_VAR/drill on `port`, time it, check its
    books, and remove it (unless `keep`). The running service is untouched."""
    if not stanza_exists(s) or not backups(s):
        raise StackError(f"no backup in {s.backup_repo}: make one first (kondge backup --full)")
    if moment is None:
        flush_archive(s)
    root = s.var / "drill"
    data, run = root / "data", root / "run"
    stop_scratch(data)
    shutil.rmtree(root, ignore_errors=True)
    for path in (root, data, run):
        path.mkdir(parents=True)
    user = cluster._pg_user()
    if user is not None:
        for path in (root, data, run):
            os.chown(path, user.pw_uid, user.pw_gid)
    data.chmod(0o700)
    began = time.monotonic()
    try:
        pgbackrest(s, "restore", f"--pg1-path={data}", "--archive-mode=off",
                   *restore_args(s, moment), timeout=None)
        restored = time.monotonic()
        start_scratch(s, data, run, port)
        dsn = f"host={run} port={port} dbname=kondge user=postgres"
        wait_until_serving(dsn)
        serving = time.monotonic()
        figures = books(dsn)
    finally:
        if not keep:
            stop_scratch(data)
            shutil.rmtree(root, ignore_errors=True)
    return dict(figures, restore_seconds=round(restored - began, 1),
                serving_seconds=round(serving - began, 1),
                balanced=books_balance(figures), kept=str(data) if keep else None)


def start_scratch(s: config.Settings, data: Path, run: Path, port: int):
    """Start a restored copy on its own port and socket, archiving nothing."""
    log = data.parent / "postgres.log"
    options = (f"-p {port} -c listen_addresses='' -c unix_socket_directories='{run}' "
               "-c archive_mode=off -c shared_buffers=128MB")
    result = cluster._as_pg([str(cluster.pg_bin(s) / "pg_ctl"), "-D", str(data), "-l",
                             str(log), "-o", options, "-w", "-t", "600", "start"])
    if result.returncode != 0:
        tail = log.read_text()[-1500:] if log.exists() else ""
        raise StackError(f"the restored copy did not start: {result.stderr.strip()}\n{tail}")


def stop_scratch(data: Path):
    if (data / "postmaster.pid").exists():
        pg_ctl = shutil.which("pg_ctl") or "/usr/lib/postgresql/15/bin/pg_ctl"
        cluster._as_pg([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"])


# --- the nightly run ---------------------------------------------------------------

def timer_units(s: config.Settings) -> dict[str, str]:
    """A systemd service and timer for the nightly backup: a full one on
    Sunday, a differential one the other nights (01:30)."""
    kondge = s.home / ".venv" / "bin" / "kondge"
    env = "".join(f"Environment={k}={v}\n" for k, v in (("KONDGE_HOME", s.home),
                                                        ("KONDGE_VAR", s.var)))
    service = f"""[Unit]
Description=Kondge billing: nightly backup (pgBackRest; full on Sunday, differential otherwise)
Documentation=file://{s.home}/docs/operations.md

[Service]
Type=oneshot
{env}EnvironmentFile=-/etc/default/kondge
ExecStart=/bin/sh -c 'if [ "$(date +%%u)" = 7 ]; then exec {kondge} backup --full; else exec {kondge} backup --diff; fi'
"""
    timer = """[Unit]
Description=Kondge billing: nightly backup

[Timer]
OnCalendar=*-*-* 01:30:00
Persistent=true

[Install]
WantedBy=timers.target
"""
    return {"kondge-backup.service": service, "kondge-backup.timer": timer}


def cron_lines(s: config.Settings) -> str:
    kondge = s.home / ".venv" / "bin" / "kondge"
    env = f"KONDGE_HOME={s.home} KONDGE_VAR={s.var}"
    return (f"30 1 * * 0   root  {env} {kondge} backup --full\n"
            f"30 1 * * 1-6 root  {env} {kondge} backup --diff\n")
