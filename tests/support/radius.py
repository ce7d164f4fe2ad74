"""A small RADIUS client for the tests and the load generator.

pyrad encodes and decodes the packets (and checks the reply's
authenticator against the secret); the sockets are ours, so a test
controls the source address (which gateway it is), the packet id and the
retransmissions.
"""

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from pyrad import packet
from pyrad.dictionary import Dictionary

DICTIONARY = Dictionary(str(Path(__file__).with_name("dictionary")))


@dataclass
class Reply:
    code: int
    pairs: dict = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.code == packet.AccessAccept

    def get(self, name):
        values = self.pairs.get(name)
        return values[0] if values else None

    def h323(self, name, prefix=""):
        """The value of an h323 reply pair without its "name=" lead."""
        wire = "h323-currency-type" if (prefix and name == "h323-currency") else name
        raw = self.get(prefix + wire)
        if raw is None:
            return None
        assert raw.startswith(wire + "="), f"{raw!r} does not repeat its name"
        return raw[len(wire) + 1:]


class RadiusClient:
    def __init__(self, auth_port, acct_port, secret, host="127.0.0.1", source="127.0.0.1",
                 timeout=2.0):
        self.host, self.auth_port, self.acct_port = host, auth_port, acct_port
        self.secret = secret.encode()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))
        self.sock.settimeout(timeout)

    def close(self):
        self.sock.close()

    def _exchange(self, pkt, port, tries=1, raw=None):
        raw = raw or pkt.RequestPacket()
        for _ in range(tries):
            self.sock.sendto(raw, (self.host, port))
            try:
                while True:
                    data, _addr = self.sock.recvfrom(4096)
                    reply = packet.Packet(secret=self.secret, dict=DICTIONARY, packet=data)
                    if reply.id != pkt.id:
                        continue        # a late answer to an earlier packet
                    if not pkt.VerifyReply(reply, data):
                        raise AssertionError("reply authenticator does not match the secret")
                    return Reply(reply.code, {
                        key: [v.decode() if isinstance(v, bytes) else v for v in reply[key]]
                        for key in reply.keys() if isinstance(key, str)})
            except socket.timeout:
                continue
        return None

    def prepared_access(self, pairs):
        """An Access-Request that can be sent again byte for byte, as a gateway
        retransmits it: send(tries) -> the reply or None."""
        pkt = packet.AuthPacket(code=packet.AccessRequest, secret=self.secret,
                                dict=DICTIONARY, id=os.urandom(1)[0])
        for name, value in pairs:
            if name == "User-Password":
                pkt[name] = pkt.PwCrypt(value)
            else:
                pkt.AddAttribute(name, value)
        raw = pkt.RequestPacket()
        return lambda tries=1: self._exchange(pkt, self.auth_port, tries, raw)

    def access(self, pairs, message_authenticator=False, packet_id=None, tries=1):
        pkt = packet.AuthPacket(code=packet.AccessRequest, secret=self.secret,
                                dict=DICTIONARY, id=packet_id if packet_id is not None
                                else os.urandom(1)[0])
        for name, value in pairs:
            if name == "User-Password":
                pkt[name] = pkt.PwCrypt(value)
            else:
                pkt.AddAttribute(name, value)
        if message_authenticator:
            pkt.add_message_authenticator()
        return self._exchange(pkt, self.auth_port, tries)

    def accounting(self, pairs, packet_id=None, tries=1):
        pkt = packet.AcctPacket(code=packet.AccountingRequest, secret=self.secret,
                                dict=DICTIONARY, id=packet_id if packet_id is not None
                                else os.urandom(1)[0])
        for name, value in pairs:
            pkt.AddAttribute(name, value)
        return self._exchange(pkt, self.acct_port, tries)
