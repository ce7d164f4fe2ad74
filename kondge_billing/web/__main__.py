"""Serve the card holders' web portal with waitress (the supervisor starts
this: kondge_billing/operations/web_process.py).

    python -m kondge_billing.web [--key-from-stdin]

Settings as the rest of the service (KONDGE_WEB_LISTEN, KONDGE_WEB_PORT,
KONDGE_WEB_DSN, KONDGE_WEB_PROXIES, KONDGE_WEB_THREADS; docs/operations.md).
With --key-from-stdin the PIN key is read from standard input (the
supervisor hands it over, so the portal's user needs no access to its
file); else from KONDGE_PIN_KEY.
"""

import argparse
import logging
import os
import signal
import sys

from waitress import serve

from .. import config
from ..store.db import Database
from ..store.pins import PinKeyError, load_key
from ..operations.web_process import NICE
from . import create_app


def lower_own_priority():
    """Run at nice NICE. Where the kernel groups processes by session for
    scheduling (autogroup, /proc/sys/kernel/sched_autogroup_enabled), a nice
    value weighs only against the processes of the same session, and the
    portal has a session of its own: so its group gets NICE too, or the
    portal would take as much CPU as FreeRADIUS's whole session."""
    os.nice(NICE)
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(NICE))
    except OSError:                      # no autogroup in this kernel
        pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kondge_billing.web",
                                     description="serve the card holders' web portal")
    parser.add_argument("--key-from-stdin", action="store_true",
                        help="read the PIN key from standard input (as the supervisor "
                             "hands it over) rather than from KONDGE_PIN_KEY")
    args = parser.parse_args(argv)
    s = config.load()
    # the call path comes first: on a busy machine the portal yields the CPU
    # to FreeRADIUS (docs/portal.md; make bench-web measures the cost); the
    # supervisor gives its PostgreSQL backends the same priority
    lower_own_priority()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(name)s %(message)s")
    if args.key_from_stdin:
        key = sys.stdin.buffer.read().strip()
        if len(key) < 32:
            print("web: no PIN key on standard input", file=sys.stderr)
            return 1
    else:
        try:
            key = load_key(s.pin_key_file)
        except PinKeyError as exc:
            print(f"web: {exc}", file=sys.stderr)
            return 1
    db = Database(s.web_dsn, timeout_ms=s.db_timeout_ms, application_name="kondge-web",
                  deadline_ms=s.db_timeout_ms + 500)
    app = create_app(db, key, proxies=s.web_proxies)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    logging.getLogger("kondge.web").info("serving on http://%s:%s/", s.web_listen, s.web_port)
    serve(app, host=s.web_listen, port=s.web_port, threads=s.web_threads,
          ident="kondge", clear_untrusted_proxy_headers=True, channel_timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
