"""Running the service: the supervisor handed the billing sweep, and the
names the CLI, the tests and the benchmarks use, each from its own module.

Where each concern lives:

- cluster.py: the private PostgreSQL cluster under var/pg (finding
  PostgreSQL's programs, initdb, its settings, start and stop, the hold of
  `kondge server db-stop`, roles and database, migrations and the demo set);
- radius_config.py: every piece of FreeRADIUS syntax written at run time
  (the gateways' clients.conf, a worker's clients.conf, the front end's
  workers.conf), and the only module that writes any;
- radius_processes.py: the FreeRADIUS processes (the front end and its
  workers, or the single server), their pid files, run directories,
  spools and control socket;
- supervisor.py: the loop that starts those parts and keeps them running,
  applies gateway changes, and `start`, `stop` and `status` around it;
- here: `run_foreground`, which hands the supervisor the billing service's
  sweep (supervisor.py itself knows nothing of billing).

New code imports from those modules; the names below are kept for the
callers that use them from here.
"""

from pathlib import Path

from .. import config
from . import supervisor
from .cluster import (PG_TUNING, ROLES, db_held_down, db_hold_flag, db_start, db_stop,
                      ensure_cluster, ensure_database, pg_bin, pg_running,
                      prepare_database, start_postgres, stop_postgres, superuser_dsn,
                      write_pg_config)
from ..edge import answered, spool
from .console import say
from ..store.db import Database
from ..store.gateways import FileDirectory
from ..edge.radius_edge import handle_accounting
from ..errors import StackError
from .radius_config import WORKER_HOME_SERVER, workers_conf
from .radius_processes import (FREERADIUS, RADMIN, Radius, RadiusSet, directory_file,
                               front_end_view, fsync_spool, quarantine_dirs, radius_env,
                               radius_pids, radmin, render_clients, spool_dirs,
                               venv_site_packages, worker_dirs)
from ..calls.service import Billing
from .supervisor import (Supervisor, applied_file, apply_gateway_change, gateway_snapshot,
                         start_background, status, stop_background, supervisor_pid)

__all__ = [
    # cluster.py
    "PG_TUNING", "ROLES", "db_held_down", "db_hold_flag", "db_start", "db_stop",
    "ensure_cluster", "ensure_database", "pg_bin", "pg_running", "prepare_database",
    "start_postgres", "stop_postgres", "superuser_dsn", "write_pg_config",
    # errors.py
    "StackError",
    # radius_config.py
    "WORKER_HOME_SERVER", "workers_conf",
    # radius_processes.py
    "FREERADIUS", "RADMIN", "Radius", "RadiusSet", "directory_file", "front_end_view",
    "fsync_spool", "radius_env", "radius_pids", "radmin", "render_clients", "spool_dirs",
    "venv_site_packages", "worker_dirs",
    # supervisor.py
    "Supervisor", "applied_file", "apply_gateway_change", "gateway_snapshot",
    "start_background", "status", "stop_background", "supervisor_pid",
    # here
    "billing_sweep", "run_foreground", "spool_replay",
]


# How often the supervisor looks for spooled accounting to store.
SPOOL_REPLAY_SECONDS = 2
# of which the replay spends at most this much: the live calls keep the
# rest of the CPU and the database while a long outage's spool drains
SPOOL_REPLAY_BUDGET = 1.0


def billing_sweep(s: config.Settings, db: Database) -> supervisor.Sweep:
    """The supervisor's sweep: the billing service's (lapse holds whose call
    never started, close calls whose Stop was lost), built on `db` when
    first run, saying what it did."""
    billing: Billing | None = None

    def sweep() -> str:
        nonlocal billing
        if billing is None:
            billing = Billing.from_settings(s, db)
        result = billing.sweep(s.session_grace)
        if not any(result.values()):
            return ""
        return (f"{result['holds_lapsed']} unstarted hold(s) lapsed, "
                f"{result['sessions_closed']} call(s) without Stop closed")
    return sweep


def spool_replay(s: config.Settings, db: Database) -> supervisor.Sweep:
    """The supervisor's replay of the accounting spools (spool.py): every record
    the hook kept while the database could not take it, then the quarantined
    ones, through the same call path as the hook's, saying what it stored."""
    billing: Billing | None = None

    def log(level, message):
        if level == "error":
            say(f"spool: {message}")

    def replay() -> str:
        nonlocal billing
        dirs = spool_dirs(s)
        for mended in spool.recheck(dirs):
            say(f"spool: {mended} can keep records again")
        if not any(spool.pending(d) for d in dirs) and not any(
                q.is_dir() and any(q.iterdir()) for q in quarantine_dirs(s)):
            return ""
        if billing is None:
            billing = Billing.from_settings(s, db, FileDirectory(s.gateway_directory))

        def handle(pairs):
            return handle_accounting(billing, pairs, log)
        kept = spool.replay(dirs, handle, log, budget=SPOOL_REPLAY_BUDGET)
        quarantined = (spool.Replayed() if kept.paused
                       else spool.replay_quarantine(dirs, handle, log))
        stored = kept.stored + quarantined.stored
        if not stored:
            return ""
        left = kept.waiting + quarantined.waiting
        return (f"{stored} record(s) stored from the spool"
                + ("" if not left else
                   f", {left} more to come (at most {SPOOL_REPLAY_BUDGET:g} s of every "
                   f"{SPOOL_REPLAY_SECONDS} s go to the spool)" if kept.paused else
                   f", {left} still waiting (the database stopped answering)"))
    return replay


def run_foreground(s: config.Settings, ready_file: Path | None = None) -> int:
    """`kondge server run`: the supervisor in the foreground, with the billing
    sweep and the replay of the accounting spools."""
    db = Database(s.dsn, application_name="kondge-supervisor")
    replay_db = Database(s.radius_dsn, application_name="kondge-spool-replay")
    return supervisor.run_foreground(s, db, billing_sweep(s, db), ready_file,
                                     chores=(("spool", SPOOL_REPLAY_SECONDS,
                                              spool_replay(s, replay_db)),
                                             ("journal", 3600, prune_journals(s))))


def prune_journals(s: config.Settings) -> supervisor.Sweep:
    """The supervisor's pruning of the journals of answered accounting."""
    def prune() -> str:
        gone = answered.prune([d.parent for d in spool_dirs(s)], s.answered_days)
        return f"{gone} journal file(s) older than {s.answered_days} day(s) removed" if gone else ""
    return prune
