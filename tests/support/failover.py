"""A gateway with a primary and a secondary RADIUS server: each request goes
to the server that answered last; no answer within the timeout sends it to
the other (as a Cisco gateway's `radius-server retransmit` and server list do)."""

import threading

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
