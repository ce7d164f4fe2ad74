"""Waiting for something asynchronous: ask again and again until it holds or
a deadline passes, never a fixed sleep that hopes it is long enough."""

import time


def poll(check, timeout: float, step: float = 0.2, ignore=()):
    """Ask check() every `step` seconds until it returns something true; the
    monotonic time it did, or None once `timeout` seconds have passed.
    Exceptions of the `ignore` classes count as not yet (a node or a
    database may be down meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return time.monotonic()
        except ignore:
            pass
        time.sleep(step)
    return None


def wait_for(what: str, check, timeout: float, step: float = 0.2, ignore=(), detail=None):
    """poll(), failing with an AssertionError that names `what` was awaited
    (and, given `detail`, what detail() says at that moment)."""
    done = poll(check, timeout, step, ignore)
    if done is None:
        said = f": {detail()}" if detail is not None else ""
        raise AssertionError(f"{what} not within {timeout:g} s{said}")
    return done
