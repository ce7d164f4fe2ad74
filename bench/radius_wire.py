"""RADIUS on the wire, byte by byte, for the fuzzer (bench/fuzz.py).

pyrad refuses to encode what a fuzzer must send (a length that lies, an
attribute of 0 bytes, a Message-Authenticator of 5), so packets are built
here by hand: attributes (RFC 2865, 5), vendor attributes (5.26), the
hidden User-Password (5.2), the Accounting-Request authenticator (RFC 2866,
3), Message-Authenticator (RFC 3579, 3.2) and the reply's authenticator.

`silent_reasons` is the model of what FreeRADIUS 3.2 drops without an
answer, read from the packet's bytes alone: the fuzzer's expectation of
silence comes from it, whatever mutation made the packet.
"""

import hmac
import re
import socket
import struct
from dataclasses import dataclass
from hashlib import md5
from pathlib import Path

HEADER = 20
MAX_PACKET = 4096
MAX_ATTRIBUTES = 200                # freeradius/common.conf, security.max_attributes

ACCESS_REQUEST, ACCESS_ACCEPT, ACCESS_REJECT = 1, 2, 3
ACCOUNTING_REQUEST, ACCOUNTING_RESPONSE = 4, 5
ACCESS_CHALLENGE, STATUS_SERVER = 11, 12
CODE_NAMES = {1: "Access-Request", 2: "Access-Accept", 3: "Access-Reject",
              4: "Accounting-Request", 5: "Accounting-Response", 11: "Access-Challenge",
              12: "Status-Server"}

USER_PASSWORD, VENDOR_SPECIFIC, EAP_MESSAGE, MESSAGE_AUTHENTICATOR = 2, 26, 79, 80
# what each port serves; anything else sent to it is dropped
PORT_CODES = {"auth": (ACCESS_REQUEST, STATUS_SERVER),
              "acct": (ACCOUNTING_REQUEST, STATUS_SERVER)}
# the answers a request may get
ANSWER_CODES = {ACCESS_REQUEST: (ACCESS_ACCEPT, ACCESS_REJECT),
                ACCOUNTING_REQUEST: (ACCOUNTING_RESPONSE,),
                STATUS_SERVER: (ACCESS_ACCEPT, ACCOUNTING_RESPONSE)}

FREERADIUS_DICTIONARIES = Path("/usr/share/freeradius")


# --- dictionaries --------------------------------------------------------------------

@dataclass(frozen=True)
class AttrDef:
    name: str
    vendor: int                     # 0: a standard attribute
    code: int
    type: str                       # string, octets, integer, ipaddr, date, ...


class Dictionary:
    """The attributes of FreeRADIUS dictionary files (ATTRIBUTE, VALUE, VENDOR,
    BEGIN-VENDOR/END-VENDOR); those with no number on the wire are left out."""

    def __init__(self, paths):
        self.by_name: dict[str, AttrDef] = {}
        self.by_key: dict[tuple, AttrDef] = {}
        self.values: dict[str, dict[str, int]] = {}
        for path in paths:
            self._read(Path(path))

    def _read(self, path: Path):
        vendors, vendor = {}, 0
        for line in path.read_text().splitlines():
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if words[0] == "VENDOR":
                vendors[words[1]] = int(words[2])
            elif words[0] == "BEGIN-VENDOR":
                vendor = vendors[words[1]]
            elif words[0] == "END-VENDOR":
                vendor = 0
            elif words[0] == "ATTRIBUTE" and words[2].isdigit():
                self._attribute(words[1], vendor, int(words[2]), words[3])
            elif words[0] == "VALUE" and words[3].isdigit():
                self.values.setdefault(words[1], {})[words[2]] = int(words[3])

    def _attribute(self, name, vendor, code, type_):
        if not 0 < code < 256:
            return                   # internal: never on the wire
        attr = AttrDef(name, vendor, code, re.sub(r"\[.*", "", type_))
        self.by_name[name] = attr
        self.by_key[(vendor, code)] = attr

    def vendor_attributes(self, vendor: int | None = None) -> list[AttrDef]:
        return sorted((a for a in self.by_name.values()
                       if a.vendor and (vendor is None or a.vendor == vendor)),
                      key=lambda a: (a.vendor, a.code))

    def standard_attributes(self) -> list[AttrDef]:
        return sorted((a for a in self.by_name.values() if not a.vendor and a.type != "vsa"),
                      key=lambda a: a.code)


def project_dictionary(project_dictionary_file: Path) -> Dictionary:
    """FreeRADIUS's RFC, Cisco and Quintum dictionaries and the project's own."""
    names = ("rfc2865", "rfc2866", "rfc2869", "cisco", "quintum")
    return Dictionary([FREERADIUS_DICTIONARIES / f"dictionary.{n}" for n in names]
                      + [project_dictionary_file])


# --- encoding ------------------------------------------------------------------------

def attribute(code: int, value: bytes) -> bytes:
    """One attribute; a value too long for its length byte is cut to fit."""
    value = value[:253]
    return bytes((code, len(value) + 2)) + value


def vendor_attribute(vendor: int, code: int, value: bytes) -> bytes:
    inner = attribute(code, value[:247])
    return struct.pack("!BBL", VENDOR_SPECIFIC, len(inner) + 6, vendor) + inner


def encode_value(attr: AttrDef, value, dictionary: Dictionary) -> bytes:
    """A value for the wire: bytes as they are, numbers (and VALUE names) as the
    attribute's type says, anything else as UTF-8 text."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        value = dictionary.values.get(attr.name, {}).get(value, value)
    try:
        if attr.type in ("integer", "date"):
            return struct.pack("!L", int(value) & 0xFFFFFFFF)
        if attr.type == "ipaddr":
            return socket.inet_aton(value)
    except (ValueError, TypeError, OSError):
        pass                        # not one: sent as text, of whatever length it has
    return str(value).encode("utf-8", "surrogatepass")


def encode_pair(attr: AttrDef, value, dictionary: Dictionary) -> bytes:
    data = encode_value(attr, value, dictionary)
    if attr.vendor:
        return vendor_attribute(attr.vendor, attr.code, data)
    return attribute(attr.code, data)


def hide_password(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """User-Password hidden as RFC 2865, 5.2 says (at most 128 bytes)."""
    buf = password[:128] or b"\0"
    buf += b"\0" * (-len(buf) % 16)
    out, last = b"", authenticator
    for i in range(0, len(buf), 16):
        pad = md5(secret + last).digest()
        last = bytes(a ^ b for a, b in zip(buf[i:i + 16], pad))
        out += last
    return out


def unhide_password(hidden: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """The password the server reads, up to its first NUL (FreeRADIUS cuts there)."""
    out, last = b"", authenticator
    for i in range(0, len(hidden), 16):
        chunk = hidden[i:i + 16]
        pad = md5(secret + last).digest()
        out += bytes(a ^ b for a, b in zip(chunk, pad))
        last = chunk
    return out.split(b"\0", 1)[0]


def header(code: int, pid: int, length: int, authenticator: bytes) -> bytes:
    return struct.pack("!BBH", code & 0xFF, pid & 0xFF, length & 0xFFFF) + authenticator


def accounting_authenticator(packet: bytes, secret: bytes) -> bytes:
    """RFC 2866, 3: MD5 over the packet with 16 zero bytes as its authenticator."""
    return md5(packet[:4] + bytes(16) + packet[HEADER:] + secret).digest()


def message_authenticator(packet: bytes, secret: bytes, offset: int,
                          authenticator: bytes | None = None) -> bytes:
    """HMAC-MD5 of the packet with the Message-Authenticator at `offset` zeroed
    (and the authenticator field replaced, when given: zeroes for accounting,
    the request's for a reply)."""
    data = bytearray(packet)
    data[offset + 2:offset + 18] = bytes(16)
    if authenticator is not None:
        data[4:20] = authenticator
    return hmac.new(secret, bytes(data), "md5").digest()


def response_authenticator(reply: bytes, request_authenticator: bytes, secret: bytes) -> bytes:
    return md5(reply[:4] + request_authenticator + reply[HEADER:] + secret).digest()


# --- decoding ------------------------------------------------------------------------

class Malformed(ValueError):
    """Attributes that do not fill the packet exactly (FreeRADIUS drops it)."""


def split_attributes(body: bytes) -> list[tuple[int, bytes]]:
    """[(type, value)] of a packet's attributes, as rad_packet_ok checks them."""
    found, at = [], 0
    while at < len(body):
        if len(body) - at < 2:
            raise Malformed("attribute-header-overflow")
        code, length = body[at], body[at + 1]
        if code == 0:
            raise Malformed("attribute-0")
        if length < 2:
            raise Malformed("attribute-too-short")
        if at + length > len(body):
            raise Malformed("attribute-overflow")
        found.append((code, body[at + 2:at + length]))
        at += length
    return found


def named_values(attributes, dictionary: Dictionary) -> dict[str, list[bytes]]:
    """{name: [raw values]} of decoded attributes, vendor ones unwrapped where
    they are well formed (one attribute in each Vendor-Specific, as gateways send)."""
    result: dict[str, list[bytes]] = {}
    for code, value in attributes:
        key, data = (0, code), value
        if code == VENDOR_SPECIFIC and len(value) >= 8 and value[5] == len(value) - 4:
            key, data = (struct.unpack("!L", value[:4])[0], value[4]), value[6:]
        attr = dictionary.by_key.get(key)
        name = attr.name if attr else f"Attr-{key[0]}-{key[1]}"
        result.setdefault(name, []).append(data)
    return result


# --- what FreeRADIUS drops without an answer -------------------------------------------

def silent_reasons(data: bytes, port: str, secret: bytes | None,
                   require_ma: bool = False) -> list[str]:
    """Why FreeRADIUS 3.2 must give this datagram no answer (empty: it may
    answer). `secret` None: it came from no known client."""
    if secret is None:
        return ["unknown-source"]
    if len(data) < HEADER:
        return ["short-datagram"]
    length = int.from_bytes(data[2:4], "big")
    if length < HEADER:
        return ["length-below-20"]
    if length > MAX_PACKET:
        return ["length-over-4096"]
    if length > len(data):
        return ["truncated"]
    packet = data[:length]
    reasons = [] if packet[0] in PORT_CODES[port] else ["code-not-served-on-port"]
    try:
        attributes = split_attributes(packet[HEADER:])
    except Malformed as exc:
        return reasons + [str(exc)]
    return reasons + _attribute_reasons(packet, attributes, secret, require_ma)


def _attribute_reasons(packet, attributes, secret, require_ma) -> list[str]:
    reasons = []
    if len(attributes) > MAX_ATTRIBUTES:
        reasons.append("too-many-attributes")
    codes = [code for code, _ in attributes]
    has_ma = MESSAGE_AUTHENTICATOR in codes
    if any(code == MESSAGE_AUTHENTICATOR and len(v) != 16 for code, v in attributes):
        reasons.append("message-authenticator-length")
    elif has_ma and not _message_authenticator_holds(packet, secret):
        reasons.append("message-authenticator-wrong")
    if EAP_MESSAGE in codes and not has_ma:
        reasons.append("eap-without-message-authenticator")
    if packet[0] == ACCOUNTING_REQUEST and \
            accounting_authenticator(packet, secret) != packet[4:HEADER]:
        reasons.append("request-authenticator-wrong")
    if packet[0] == STATUS_SERVER and not has_ma:
        reasons.append("status-server-without-message-authenticator")
    if packet[0] == ACCESS_REQUEST and require_ma and not has_ma:
        reasons.append("message-authenticator-required")
    return reasons


def _message_authenticator_holds(packet: bytes, secret: bytes) -> bool:
    """The first Message-Authenticator checks out (accounting: over zeroes)."""
    offset = HEADER
    for code, value in split_attributes(packet[HEADER:]):
        if code == MESSAGE_AUTHENTICATOR:
            zeroes = bytes(16) if packet[0] == ACCOUNTING_REQUEST else None
            return hmac.compare_digest(
                message_authenticator(packet, secret, offset, zeroes), value)
        offset += len(value) + 2
    return False


def reply_problem(reply: bytes, request: bytes, secret: bytes) -> str | None:
    """What is wrong with a reply's framing or authenticators, if anything."""
    if len(reply) < HEADER or int.from_bytes(reply[2:4], "big") != len(reply):
        return "reply-length"
    if response_authenticator(reply, request[4:HEADER], secret) != reply[4:HEADER]:
        return "reply-authenticator-wrong"
    try:
        attributes = split_attributes(reply[HEADER:])
    except Malformed as exc:
        return f"reply-{exc}"
    offset = HEADER
    for code, value in attributes:
        if code == MESSAGE_AUTHENTICATOR and not hmac.compare_digest(
                message_authenticator(reply, secret, offset, request[4:HEADER]), value):
            return "reply-message-authenticator-wrong"
        offset += len(value) + 2
    return None
