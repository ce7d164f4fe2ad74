"""Overload control: admit fewer new calls while accounting waits.

FreeRADIUS serves the Access-Requests waiting in its queue before the
Accounting-Requests that came in on a UDP accounting listener. Past its
capacity a server would go on admitting new calls while the Starts and
Stops of the calls it admitted wait in the queue, past the gateways'
timeouts, and completed calls fall towards none. (Behind the front end a
worker receives accounting over TCP, queued with the logins, and the
front end limits the new logins each worker has unanswered:
radius_config.WORKER_PROTOS. This control is the second line there, and
the only one in a single process.)

So each FreeRADIUS process watches how long the accounting records it
serves waited in its queue (sites-available/kondge stamps every packet with
the time FreeRADIUS received it: Kondge-Received-Seconds / -Microseconds)
and admits only a share of the new Access-Requests:
- accounting records that keep waiting longer than KONDGE_SHED_AFTER_MS
  for PERSIST seconds (no record in time meanwhile) cut the share to CUT of
  itself, and go on cutting it at most once every CUT_EVERY seconds, down
  to FLOOR. A stall that passes (a checkpoint's flush, a restart, the burst
  of retransmissions after one) leaves a few late records that are served
  within a fraction of that: it is not overload, and turns nobody away;
- records served within half that wait raise the share by RISE a second
  (slowly: the accounting of the calls a larger share admits comes a
  while later, and a share won back at once would overload the process
  again before it could tell), back up to all, and RECOVER_AFTER seconds
  without a late record admit all again;
- while the share is cut, an Access-Request that itself waited longer than
  the limit is turned away too: its answer would come too late to be of use;
- for a few seconds after the database came back (or the process began),
  late records count for nothing: its new connections' first statements
  are slow (backends forked, caches and functions loaded afresh) while the
  gateways' retransmissions of the outage arrive, and turning calls away
  then would fail the very calls that waited out the outage.
A request turned away gets, at once and without the database, what it gets
while the database is unreachable (KONDGE_AUTH_WHEN_DB_DOWN): by default no
answer, so that the gateway tries its second server or again later; with
"reject", an Access-Reject with code 8 (service not available). The calls
already up keep their accounting flowing. Each episode is logged twice:
when it starts and when all are admitted again, with the count turned away.

A record read back from the spool carries no stamp and is never counted.
Timings and shares are floats: never money.
"""

import math
import random
import time

from . import attributes
from .request import collect

PERSIST = 0.5       # seconds accounting must stay late before the first cut
CUT_EVERY = 0.3     # seconds between two cuts of the share admitted
RISE = 0.1          # share won back a second while accounting is served in time
CUT = 0.7          # what a late accounting record leaves of the share
FLOOR = 0.02        # the share never falls below this: the controller keeps probing
RECOVER_AFTER = 10.0  # seconds without a late record after which all are admitted again


def queue_wait(pairs, now: float) -> float | None:
    """Seconds since FreeRADIUS received the packet, or None if it is not stamped."""
    values = collect(pairs)
    seconds = values.get(attributes.RECEIVED_SECONDS, [None])[0]
    micro = values.get(attributes.RECEIVED_MICROSECONDS, ["0"])[0]
    try:
        received = int(seconds) + int(micro) / 1e6
    except (TypeError, ValueError):
        return None
    return max(now - received, 0.0)


class Overload:
    """One FreeRADIUS process's view of its own queue (an AIMD controller)."""

    def __init__(self, limit_us: int, clock=time.time, draw=random.random,
                 settling=lambda: False):
        self.limit = limit_us / 1e6        # seconds
        #: True while the database warms up after coming back: late records
        #: then are its first slow answers, not overload (store.db.Database.settling)
        self.settling = settling
        self.clock = clock
        self.draw = draw
        self.admit = 1.0           # share of new Access-Requests served
        self.last_cut = -math.inf
        self.last_rise = -math.inf          # when the share last grew (or was cut)
        self.late_since: float | None = None    # the first late record of a late spell
        self.refused = 0           # in the current episode

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    @property
    def shedding(self) -> bool:
        return self.admit < 1.0

    def accounting(self, pairs, log):
        """Note how long an accounting record waited; admit fewer or more."""
        if not self.enabled:
            return
        now = self.clock()
        wait = queue_wait(pairs, now)
        if wait is None:
            return
        if wait > self.limit:
            if self.settling():
                self.late_since = None   # not a late spell: the database is warming up
                return
            if self.late_since is None:
                self.late_since = now
            if now - self.late_since >= PERSIST and now - self.last_cut >= CUT_EVERY:
                if not self.shedding:
                    log("error", f"overload: an accounting record waited {wait * 1000:.0f} ms "
                                 f"in the queue (KONDGE_SHED_AFTER_MS={self.limit * 1000:g}); "
                                 f"admitting fewer new calls until accounting is served in "
                                 f"time again")
                self.admit = max(self.admit * CUT, FLOOR)
                self.last_cut = self.last_rise = now
            return
        self.late_since = None
        if wait < self.limit / 2 and self.shedding:
            self.admit = min(self.admit + RISE * max(now - self.last_rise, 0.0), 1.0)
            self.last_rise = now
            if not self.shedding:
                self._over(log)
        else:
            self._recover(now, log)

    def _recover(self, now: float, log):
        if self.shedding and now - self.last_cut >= RECOVER_AFTER:
            self.admit = 1.0
            self._over(log)

    def _over(self, log):
        log("info", f"overload over: all new calls admitted again; "
                    f"{self.refused} authorization(s) turned away meanwhile")
        self.refused = 0

    def refuse(self, pairs, log) -> bool:
        """True: turn this Access-Request away for overload."""
        if not self.enabled:
            return False
        now = self.clock()
        self._recover(now, log)
        if not self.shedding:
            return False
        wait = queue_wait(pairs, now)
        if (wait is not None and wait > self.limit) or self.draw() >= self.admit:
            self.refused += 1
            return True
        return False
