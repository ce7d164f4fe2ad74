"""Many things at once, for the tests that race calls against one card."""

import threading


def at_once(count: int, work, timeout: float = 60.0):
    """Run work(i, go) in `count` threads; each calls go() when ready, and
    all are let through together. Waits for them all (bounded)."""
    barrier = threading.Barrier(count)
    threads = [threading.Thread(target=work, args=(i, barrier.wait)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
