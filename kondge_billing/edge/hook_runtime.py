"""The process-wide state of the hook inside FreeRADIUS.

Built once at instantiate: settings, the PIN key, the database handle (one
connection for the process, opened lazily so that `freeradius -C` and a
start with the database down both work) and the gateway directory (the
file the supervisor writes: every process of the server reads the same).
"""

import os
import time
from pathlib import Path

from .. import config
from ..store import gateways
from . import spool
from .hook_profile import HookCpu, accounting_kind
from ..store.db import Database
from .overload import Overload
from .radius_edge import handle_accounting, handle_authorize
from ..calls.service import Billing

_billing: Billing | None = None
_overload: Overload | None = None
_spool: Path | None = None
_cpu: HookCpu | None = None     # the benchmarks' CPU count (hook_profile.py), else None


def start(log):
    global _billing, _overload, _spool, _cpu
    settings = config.load()
    # this process's own spool (each worker has a run directory of its own)
    _spool = Path(os.environ.get("KONDGE_RUN_DIR") or settings.radius_run_dir) / spool.SPOOL
    # the client gives up on a hung database shortly after the server's own
    # timeout; one connection for the process: rlm_python3 runs one hook at a time
    db = Database(settings.radius_dsn, settings.db_timeout_ms, application_name="kondge-radius",
                  deadline_ms=settings.db_timeout_ms + 500, one_connection=True)
    directory = gateways.FileDirectory(settings.gateway_directory)
    _billing = Billing.from_settings(settings, db, directory)
    _overload = Overload(settings.shed_after_us, settling=db.settling)
    _cpu = HookCpu.from_env()       # the benchmarks only (bench/floor.py --hook-cpu)
    log("info", f"ready (database {settings.radius_dsn})")


def stop():
    if _billing is not None:
        _billing.db.close()


def authorize(pairs, log):
    if _cpu is not None:
        return _cpu.run("access", lambda: handle_authorize(_billing, pairs, log, _overload))
    return handle_authorize(_billing, pairs, log, _overload)


def accounting(pairs, log):
    if _cpu is not None:
        return _cpu.run(accounting_kind(pairs), lambda: handle_accounting(
            _billing, pairs, log, _overload, keep=_keep))
    return handle_accounting(_billing, pairs, log, _overload, keep=_keep)


def _keep(pairs):
    spool.append(_spool, pairs, time.time())
