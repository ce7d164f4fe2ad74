"""A small RADIUS client for the tests and the load generator.

pyrad encodes and decodes the packets (and checks the reply's
authenticator against the secret); the sockets are ours, so a test
controls the source address (which gateway it is), the packet id and the
retransmissions.
"""

import hashlib
import hmac
import os
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path

from pyrad import packet
from pyrad.dictionary import Dictionary

DICTIONARY = Dictionary(str(Path(__file__).with_name("dictionary")))

MESSAGE_AUTHENTICATOR = 80


def attribute_spans(data: bytes) -> list[tuple[int, int, bytes]]:
    """(offset, type, value) of every attribute of a raw RADIUS packet, in order."""
    (length,) = struct.unpack("!H", data[2:4])
    spans, at = [], 20
    while at < length:
        kind, size = data[at], data[at + 1]
        if size < 2 or at + size > length:
            raise AssertionError(f"malformed attribute at offset {at}")
        spans.append((at, kind, data[at + 2:at + size]))
        at += size
    return spans


def message_authenticator_state(data: bytes, request_authenticator: bytes,
                                secret: bytes) -> str:
    """RFC 3579, 3.2, for a reply to an Access-Request: "absent", "valid" or
    "invalid". The HMAC-MD5 keyed by the secret runs over Code, Identifier,
    Length, the *request's* authenticator and the attributes, with the
    Message-Authenticator's own 16 octets zeroed (computed here, not by pyrad)."""
    found = [(at, value) for at, kind, value in attribute_spans(data)
             if kind == MESSAGE_AUTHENTICATOR]
    if not found:
        return "absent"
    if len(found) > 1 or len(found[0][1]) != 16:
        return "invalid"
    at, value = found[0]
    (length,) = struct.unpack("!H", data[2:4])
    zeroed = bytearray(data[:length])
    zeroed[4:20] = request_authenticator
    zeroed[at + 2:at + 18] = bytes(16)
    expected = hmac.new(secret, bytes(zeroed), hashlib.md5).digest()
    return "valid" if hmac.compare_digest(expected, value) else "invalid"


@dataclass
class Reply:
    code: int
    pairs: dict = field(default_factory=dict)
    #: the reply's Message-Authenticator: "absent", "valid" or "invalid" (RFC 3579)
    message_authenticator: str = "absent"
    #: attribute type numbers in the order they came
    attribute_types: tuple = ()

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


def _text(value):
    """A reply value as text; octets that are no text (an HMAC) stay bytes."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value
    return value


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
                    return self._judged(pkt, raw, reply, data)
            except socket.timeout:
                continue
        return None

    def _judged(self, pkt, raw, reply, data) -> Reply:
        """The answer to `pkt` (sent as `raw`), its authenticator checked."""
        if not pkt.VerifyReply(reply, data):
            raise AssertionError("reply authenticator does not match the secret")
        state = "absent"
        if pkt.code == packet.AccessRequest:
            state = message_authenticator_state(data, raw[4:20], self.secret)
        return Reply(reply.code, {
            key: [_text(v) for v in reply[key]]
            for key in reply.keys() if isinstance(key, str)}, state,
            tuple(kind for _at, kind, _v in attribute_spans(data)))

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


class TcpRadiusClient(RadiusClient):
    """The same packets over TCP (RFC 6613), one connection a request: what
    a local process could send to a worker's TCP listeners."""

    def _exchange(self, pkt, port, tries=1, raw=None):
        raw = raw or pkt.RequestPacket()
        timeout = self.sock.gettimeout()
        with socket.create_connection((self.host, port), timeout=timeout) as conn:
            conn.sendall(raw)
            try:
                data = conn.recv(4096)
            except (socket.timeout, ConnectionError):
                return None
        if not data:
            return None                 # closed without an answer
        return self._judged(pkt, raw, packet.Packet(secret=self.secret, dict=DICTIONARY,
                                                    packet=data), data)
