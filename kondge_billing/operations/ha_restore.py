"""Restore of the HA topology (`kondge ha restore`): the database of both
nodes replaced by the topology's pgBackRest backup plus its WAL, to the end
of the archive or to a chosen moment.

pgBackRest restores one node (the primary's data folder: a delta restore
copies least); pg_auto_failover makes the other a standby again, copied
from the restored one, as it made it at `kondge ha up`. In between:

1. the primary's last WAL is archived (pgBackRest's `check`), so that a
   restore to the end of the archive reaches the last commit;
2. the runner is stopped (it would start the keepers meanwhile), the
   other node is dropped from the monitor and its folders removed, the
   restored node's keeper stopped;
3. `pgbackrest restore` into the restored node's folder; PostgreSQL is
   started there by itself (no keeper) until recovery is over and it
   takes writes, the restore's recovery settings removed, and stopped;
4. its keeper runs again (the monitor makes it a primary alone), the
   other node is created again as its synchronous standby, the runner
   started again.

The RADIUS sets keep running: meanwhile an Access-Request gets no answer
(the gateway retries) and accounting goes to each set's spool, which is
stored once the restored database takes writes.
"""

import os
import shutil
import time
from datetime import datetime

import psycopg2

from . import backup, cluster, ha
from .console import say
from ..errors import StackError

#: the settings pgBackRest's restore writes into postgresql.auto.conf; left
#: there, they would steer the recovery of every standby copied from it
RECOVERY_SETTINGS = ("restore_command", "recovery_target_time", "recovery_target_action",
                     "recovery_target", "recovery_target_lsn", "recovery_target_name",
                     "recovery_target_xid", "recovery_target_inclusive",
                     "recovery_target_timeline")
#: the files of a node's data folder that describe that node (its port, its
#: role, who may connect): a backup may come from the other node, so the
#: restored node keeps its own
NODE_FILES = ("postgresql.conf", "postgresql-auto-failover.conf",
              "postgresql-auto-failover-standby.conf", "pg_hba.conf", "pg_ident.conf",
              "kondge.conf")


def restore(t: ha.Topology, moment: datetime | None = None) -> dict:
    """Restore the topology's database (both nodes) to the end of the
    archive or to `moment`; what it took, in seconds."""
    bs = t.backup_settings()
    if not backup.stanza_exists(bs) or not backup.backups(bs):
        raise StackError(f"no backup in {bs.backup_repo}: make one first "
                         "(kondge ha backup --full)")
    began = time.monotonic()
    options = backup.restore_args(bs, moment)
    target = ha.primary_name(t) or next(
        (n for n in ha.NODES if (t.data(n) / "PG_VERSION").exists()), ha.NODES[0])
    other = next(n for n in ha.NODES if n != target)
    flush_archive(t, target)
    ha.stop_runner(t)
    drop_node(t, other)
    ha.stop_keepers(t, only=(target,))
    say(f"restoring {target} from {bs.backup_repo} "
        f"({'to ' + moment.isoformat() if moment else 'to the end of the archive'})")
    restore_files(t, target, options)
    restored = time.monotonic()
    recover_alone(t, target)
    ha.launch_keeper(t, target)
    ha.wait_for(f"{target} serving as the primary", lambda: ha.primary_name(t) == target
                and ha.answers(t, target), 120)
    serving = time.monotonic()
    say(f"{target} serves; making {other} its standby again (pg_auto_failover)")
    ha.create(t)
    ha.start_runner(t)
    return {"target": moment.isoformat() if moment else "end of archive",
            "restored_node": target, "standby": other,
            "restore_seconds": round(restored - began, 1),
            "serving_seconds": round(serving - began, 1),
            "standby_in_sync_seconds": round(time.monotonic() - began, 1)}


def restore_files(t: ha.Topology, name: str, options: list):
    """pgBackRest's restore into node `name`'s data folder, which keeps
    its own NODE_FILES."""
    data = t.data(name)
    own = {f: (data / f).read_bytes() for f in NODE_FILES if (data / f).exists()}
    backup.pgbackrest(t.backup_settings(), "restore", f"--pg1-path={data}", *options,
                      timeout=None)
    owner = data.stat()
    for file, text in own.items():
        (data / file).write_bytes(text)
        os.chown(data / file, owner.st_uid, owner.st_gid)


def flush_archive(t: ha.Topology, primary: str):
    """Close the primary's current WAL file and wait until it is archived."""
    try:
        ha.answers(t, primary)
    except psycopg2.Error as exc:
        say(f"{primary} does not answer ({str(exc).strip()}): the restore gets what the "
            "archive holds, without the WAL of its last minutes")
        return
    backup.archive_current_wal(t.backup_settings())


def drop_node(t: ha.Topology, name: str):
    """Stop a node, drop it from the monitor and remove its data and
    pg_auto_failover's files of it (`ha.create` makes it again)."""
    ha.stop_keepers(t, only=(name,))
    ha.hold_flag(t, name).unlink(missing_ok=True)
    if any(n["name"] == name for n in ha.node_states(t)):
        ha.autoctl(t, "drop", "node", "--monitor", t.monitor_uri, "--formation", ha.FORMATION,
                   "--name", name, "--force", timeout=120)
    for folder in (t.data(name), *autoctl_files(t, name)):
        shutil.rmtree(folder, ignore_errors=True)


def autoctl_files(t: ha.Topology, name: str) -> list:
    """pg_autoctl's configuration and state folders of a node (XDG paths
    followed by the node's data folder)."""
    relative = str(t.data(name)).lstrip("/")
    return [t.root / kind / "pg_autoctl" / relative for kind in ("config", "state")]


def recover_alone(t: ha.Topology, name: str):
    """Start the restored node's PostgreSQL without its keeper, wait until
    recovery is over and it takes writes, remove the restore's recovery
    settings, stop it (its keeper starts it from there)."""
    pg_ctl = str(cluster.pg_bin(t.s) / "pg_ctl")
    log = t.log_dir / f"{name}-restore.log"
    log.touch()
    owner = t.data(name).stat()
    os.chown(log, owner.st_uid, owner.st_gid)          # pg_ctl writes it as postgres
    started = cluster._as_pg([pg_ctl, "-D", str(t.data(name)), "-l", str(log),
                              "-o", f"-p {t.port(name)}", "-w", "-t", "600", "start"])
    if started.returncode != 0:
        tail = log.read_text()[-1500:] if log.exists() else ""
        raise StackError(f"the restored {name} did not start: {started.stderr.strip()}\n{tail}"
                         f"\nfix and run 'kondge ha restore' again")
    try:
        backup.wait_until_serving(f"host=/var/run/postgresql port={t.port(name)} "
                                  "dbname=postgres user=postgres")
        conn = ha.superuser(t, name)
        try:
            with conn.cursor() as cur:
                for setting in RECOVERY_SETTINGS:
                    cur.execute(f"ALTER SYSTEM RESET {setting}")
        finally:
            conn.close()
    finally:
        cluster._as_pg([pg_ctl, "-D", str(t.data(name)), "-m", "fast", "-w", "-t", "120",
                        "stop"])
