"""Loading the real hook module with a stand-in `radiusd` module."""

import importlib
import sys
import types
from pathlib import Path

HOOK_DIR = Path(__file__).resolve().parents[2] / "mods-config" / "python"


def load_hook(billing, spool=None):
    """The hook, serving `billing`; `spool`: the folder its spool keeps records in
    (None: a folder that cannot be written, so that nothing is kept there)."""
    logged = []
    radiusd = types.ModuleType("radiusd")
    radiusd.RLM_MODULE_REJECT, radiusd.RLM_MODULE_FAIL, radiusd.RLM_MODULE_OK = 0, 1, 2
    radiusd.L_INFO, radiusd.L_ERR = 3, 4
    radiusd.radlog = lambda level, message: logged.append((level, message))
    sys.modules["radiusd"] = radiusd
    if str(HOOK_DIR) not in sys.path:
        sys.path.insert(0, str(HOOK_DIR))
    hook = importlib.reload(importlib.import_module("kondge_hook"))
    from kondge_billing.edge import hook_runtime
    hook_runtime._billing = billing
    hook_runtime._spool = Path(spool) if spool else Path("/proc/kondge-no-spool")
    return hook, radiusd, logged
