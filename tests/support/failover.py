"""A gateway with a primary and a secondary RADIUS server: each request goes
to the server that answered last; no answer within the timeout sends it to
the other (as a Cisco gateway's `radius-server retransmit` and server list do)."""

import os
import signal
import threading

from kondge_billing.operations import ha
from tests.support.radius import RadiusClient


class FailoverClient:
    def __init__(self, hosts, auth_port, acct_port, secret="testing123", source="127.0.0.1",
                 timeout=1.0):
        self.clients = [RadiusClient(auth_port, acct_port, secret, host=h, source=source,
                                     timeout=timeout) for h in hosts]
        self.current = 0
        self.lock = threading.Lock()

    def _send(self, method, pairs):
        for turn in range(len(self.clients)):
            i = (self.current + turn) % len(self.clients)
            reply = getattr(self.clients[i], method)(pairs)
            if reply is not None:
                self.current = i
                return reply
        return None

    def access(self, pairs):
        return self._send("access", pairs)

    def accounting(self, pairs):
        return self._send("accounting", pairs)

    def close(self):
        for c in self.clients:
            c.close()


def kill_node(t, name):
    """A database node of the HA topology `t` (ha.Topology) killed at once:
    its pg_autoctl keeper's process group and its postmaster, SIGKILL."""
    keeper = int((t.root / f"{name}.pid").read_text())
    postmaster = ha.postmaster_pid(t, name)
    os.killpg(keeper, signal.SIGKILL)
    os.kill(postmaster, signal.SIGKILL)
