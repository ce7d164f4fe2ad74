"""The hook FreeRADIUS's rlm_python3 loads: translates, delegates, returns.

No business rule lives here. Each function hands the request pairs to
kondge_billing.edge.radius_edge and maps its answer to radiusd's exact integer
codes and tuples of strings (an IntEnum or a list would be dropped).
"""

import radiusd

from kondge_billing.edge import hook_runtime

CODES = {"ok": radiusd.RLM_MODULE_OK, "reject": radiusd.RLM_MODULE_REJECT,
         "no-answer": radiusd.RLM_MODULE_FAIL}
# A request to leave unanswered now (sites-available/kondge reads it).
NO_ANSWER = (("Kondge-No-Answer", "1"),)
LEVELS = {"info": radiusd.L_INFO, "error": radiusd.L_ERR}


def _log(level, message):
    radiusd.radlog(LEVELS.get(level, radiusd.L_INFO), "kondge: " + message)


def instantiate(_p):
    try:
        hook_runtime.start(_log)
    except Exception as exc:  # noqa: BLE001 - a clear line beats a traceback here
        _log("error", f"cannot start: {exc}")
        return radiusd.RLM_MODULE_FAIL
    return radiusd.RLM_MODULE_OK


def detach(_p=None):
    hook_runtime.stop()
    return radiusd.RLM_MODULE_OK


def authorize(p):
    result, reply, control = hook_runtime.authorize(p, _log)
    if result == "no-answer":
        control = tuple(control) + NO_ANSWER
    return (CODES[result], tuple(reply), tuple(control))


def accounting(p):
    result = hook_runtime.accounting(p, _log)
    if result == "no-answer":
        return (CODES[result], (), NO_ANSWER)
    return CODES[result]
