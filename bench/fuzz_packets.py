"""The fuzzer's packets: real calls of each dialect, then mutated.

A batch is a stream of calls as the gateways make them (Cisco, Quintum and
generic: stage 1, stage 2, both legs' Start, an Interim-Update, both
Stops; card logins, caller logins, refused cards, unknown numbers), with
Accounting-On/Off, Status-Server and pure noise mixed in, several calls
interleaved. Most packets then get one to three mutations (MUTATIONS). A
batch is a function of (seed, batch number) alone: the same seed gives the
same bytes, ids and authenticators, so a finding can be sent again.
"""

import random
import struct
from dataclasses import dataclass, field

from bench import radius_wire as wire

SOCKETS = 32                        # per source address: 8192 (socket, id) slots
CALLS_AT_ONCE = 24                  # calls interleaved in a batch
ANSWER, ORIGINATE = "answer", "originate"
STEPS = ("stage1", "stage2", "start-answer", "start-originate", "interim-originate",
         "stop-originate", "stop-answer")
H323 = ("h323-conf-id", "h323-setup-time", "h323-connect-time", "h323-disconnect-time",
        "h323-disconnect-cause", "h323-call-origin", "h323-call-type", "h323-gw-id",
        "h323-remote-address", "h323-credit-amount", "h323-credit-time", "h323-return-code",
        "h323-prompt-id", "h323-preferred-lang", "h323-billing-model")
# text that breaks things: controls, NUL, bidi overrides, combining marks,
# non-BMP, a BOM, lookalike digits, quotes and escapes
ODD_CHARS = ("\x00", "\x01", "\x1f", "\x7f", "\t", "\n", "\r", " ", "\u00a0", "\u2028",
             "\u202e", "\u200b", "\ufeff", "\u0301", "\U0001f4de", "\u0663", "\uff11", "é",
             "ß", "中", "'", '"', "\\", "%", "${", "}", "=", "#", ";", "0", "9", "+")
ODD_TIMES = ("", "garbage", "*14:30:25.429 GMT Wed Jan 23 2002",
             ".14:30:25.429 UTC Wed Jan 23 2002", "25:61:61.999 GMT Wed Jan 23 2002",
             "14:30:25.429 XYZ Wed Jan 23 2002", "14:30:25 GMT Feb 30 2002",
             "00:00:00.000 GMT Thu Jan 01 1970", "23:59:59.999 PST Fri Dec 31 9999",
             "14:30:25.4291234 GMT Wed Jan 23 2002", "14:30 GMT", "h323-connect-time=")
ODD_NUMBERS = ("0", "-1", "4294967295", "4294967296", "99999999999999999999999", "1e9",
               "0x10", " 60", "60 ", "+60", "6\u00a00", "١٢٣", "NaN", "100000", "100001")


@dataclass(frozen=True)
class Gateway:
    name: str
    address: str
    secret: bytes
    dialect: str                    # cisco | quintum | generic
    require_ma: bool


@dataclass(frozen=True)
class World:
    """What the fuzzer knows: the gateways, and the cards and callers it made."""

    gateways: tuple
    unknown_address: str            # a loopback address that is no gateway
    cards: dict                     # valid card number -> PIN (balance to spare)
    refused_cards: dict             # cards that must never be accepted -> PIN
    callers: dict                   # bound caller number -> its (valid) card
    access_numbers: tuple
    destinations: tuple

    def gateway_at(self, address: str) -> Gateway | None:
        return next((g for g in self.gateways if g.address == address), None)


@dataclass
class Probe:
    """One datagram to send, with what the fuzzer expects of it."""

    batch: int
    index: int
    template: str                   # "cisco stage1", "noise", ...
    kinds: tuple                    # the mutations applied; ("none",) for none
    source: str
    port: str                       # auth | acct
    socket: int
    data: bytes
    repeat: int = 1                 # sent this many times, byte for byte
    silent: tuple = ()              # why no answer may come (radius_wire.silent_reasons)

    def to_json(self) -> dict:
        return {"batch": self.batch, "index": self.index, "template": self.template,
                "kinds": list(self.kinds), "source": self.source, "port": self.port,
                "repeat": self.repeat, "expected_silence": list(self.silent),
                "hex": self.data.hex()}


@dataclass
class Draft:
    """A packet before it is encoded; mutations change it."""

    code: int
    pairs: list                     # [[dictionary name, value]]
    gateway: Gateway                # the one it is built for
    port: str
    source: str
    hide_secret: bytes
    sign_secret: bytes
    ma: str = "none"                # none | good | wrong | short
    raw: list = field(default_factory=list)           # [(position, attribute bytes)]
    body_ops: list = field(default_factory=list)      # bytes -> bytes, on the attributes
    datagram_ops: list = field(default_factory=list)  # bytes -> bytes, on the whole packet
    repeat: int = 1


# --- calls as the gateways make them ---------------------------------------------------

@dataclass
class Call:
    gateway: Gateway
    user: str
    pin: str | None                 # None: a caller login (no password)
    caller: str
    access: str
    destination: str
    conf: str
    sessions: dict
    talk: int
    steps: list


def h323_name(dialect: str, name: str) -> str:
    if dialect != "quintum":
        return name
    return "Quintum-h323-currency-type" if name == "h323-currency" else "Quintum-" + name


def h323(dialect: str, name: str, value) -> list:
    return [h323_name(dialect, name), f"{name}={value}"]


def avpair(dialect: str) -> str:
    return "Quintum-AVPair" if dialect == "quintum" else "Cisco-AVPair"


def h323_time(rng: random.Random) -> str:
    return (f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}."
            f"{rng.randrange(1000):03d} GMT Wed Jan 14 2026")


def new_call(rng: random.Random, world: World) -> Call:
    gateway = rng.choice(world.gateways)
    roll = rng.random()
    caller = rng.choice(list(world.callers)) if world.callers and rng.random() < 0.3 \
        else "1555" + "".join(rng.choice("0123456789") for _ in range(7))
    if roll < 0.55:
        user, pin = rng.choice(sorted(world.cards.items()))
    elif roll < 0.65:
        user, pin = rng.choice(sorted(world.refused_cards.items()))
    elif roll < 0.8:
        user, pin = caller, None                       # a caller (ANI) login
    else:
        user, pin = str(rng.randrange(10**9, 10**14)), "".join(
            rng.choice("0123456789") for _ in range(4))
    words = "".join(rng.choice("0123456789ABCDEF") for _ in range(32))
    steps = [s for s in STEPS if s != "interim-originate" or rng.random() < 0.5]
    return Call(gateway, user, pin, caller, rng.choice(world.access_numbers),
                rng.choice(world.destinations), " ".join(words[i:i + 8] for i in (0, 8, 16, 24)),
                {ANSWER: f"{rng.getrandbits(32):08X}", ORIGINATE: f"{rng.getrandbits(32):08X}"},
                rng.choice((0, 1, 6, 59, 60, 61, 125, 599, 3600)), steps)


def access_pairs(call: Call, stage: str, rng: random.Random) -> list:
    dialect = call.gateway.dialect
    pairs = [["User-Name", call.user]]
    if call.pin is not None:
        pairs.append(["User-Password", call.pin])
    elif rng.random() < 0.5:
        pairs.append(["User-Password", ""])            # ANI login with an empty password
    pairs += [["Calling-Station-Id", call.caller],
              ["Called-Station-Id", call.access if stage == "stage1" else call.destination],
              ["NAS-IP-Address", call.gateway.address]]
    if dialect == "generic":
        return pairs + [["NAS-Port", rng.randrange(64)], ["Service-Type", "Login-User"]]
    pairs.append(h323(dialect, "h323-conf-id", call.conf))
    if stage == "stage2" and rng.random() < 0.5:
        pairs.append([avpair(dialect), f"h323-ivr-out=ACCESSCODE:{call.destination}"])
    if dialect == "quintum":
        pairs.append(["Service-Type", "Authenticate-Only" if stage == "stage1"
                      else "Outbound-User"])
        if rng.random() < 0.3:
            pairs.append(["Quintum-AVPair", "h323-ivr-out=FOLLOW_ON_FLAG:0"])
    return pairs


def accounting_pairs(call: Call, step: str, rng: random.Random) -> list:
    status, leg = {"start": "Start", "interim": "Interim-Update", "stop": "Stop"}[
        step.split("-")[0]], step.split("-")[1]
    dialect = call.gateway.dialect
    pairs = [["Acct-Status-Type", status], ["Acct-Session-Id", call.sessions[leg]],
             ["User-Name", call.user], ["Calling-Station-Id", call.caller],
             ["Called-Station-Id", call.destination if leg == ORIGINATE else call.access],
             ["NAS-IP-Address", call.gateway.address], ["Acct-Delay-Time", 0]]
    seconds = call.talk + (20 if leg == ANSWER else 0)
    if status != "Start":
        pairs.append(["Acct-Session-Time", seconds if status == "Stop" else seconds // 2])
    if dialect == "generic":
        return pairs
    pairs += [h323(dialect, "h323-conf-id", call.conf),
              h323(dialect, "h323-call-origin", leg),
              h323(dialect, "h323-call-type", "VoIP" if leg == ORIGINATE else "Telephony"),
              h323(dialect, "h323-setup-time", h323_time(rng)),
              h323(dialect, "h323-gw-id", f"{call.gateway.name}."),
              [avpair(dialect), f"h323-incoming-conf-id={call.conf}"]]
    if status == "Stop":
        pairs += [h323(dialect, "h323-connect-time", h323_time(rng)),
                  h323(dialect, "h323-disconnect-time", h323_time(rng)),
                  h323(dialect, "h323-disconnect-cause", rng.choice(("10", "11", "13", "1F")))]
    return pairs


def call_draft(call: Call, step: str, rng: random.Random) -> tuple[str, Draft]:
    gw = call.gateway
    if step in ("stage1", "stage2"):
        draft = Draft(wire.ACCESS_REQUEST, access_pairs(call, step, rng), gw, "auth",
                      gw.address, gw.secret, gw.secret)
        if gw.require_ma or rng.random() < 0.2:
            draft.ma = "good"
        login = "caller " if call.pin is None else ""
        return f"{gw.dialect} {login}{step}", draft
    draft = Draft(wire.ACCOUNTING_REQUEST, accounting_pairs(call, step, rng), gw, "acct",
                  gw.address, gw.secret, gw.secret)
    return f"{gw.dialect} {step}", draft


def other_draft(rng: random.Random, world: World) -> tuple[str, Draft]:
    """Accounting-On/Off or Status-Server, from any gateway."""
    gw = rng.choice(world.gateways)
    kind = rng.choice(("accounting-on", "accounting-off", "status-server-auth",
                       "status-server-acct"))
    if kind.startswith("status-server"):
        port = kind.rsplit("-", 1)[1]
        draft = Draft(wire.STATUS_SERVER, [["NAS-IP-Address", gw.address]], gw, port,
                      gw.address, gw.secret, gw.secret, ma="good")
    else:
        status = "Accounting-On" if kind == "accounting-on" else "Accounting-Off"
        draft = Draft(wire.ACCOUNTING_REQUEST, [["Acct-Status-Type", status],
                                                ["NAS-IP-Address", gw.address],
                                                ["Acct-Session-Id", "00000000"]],
                      gw, "acct", gw.address, gw.secret, gw.secret)
    return f"{gw.dialect} {kind}", draft


# --- mutations -----------------------------------------------------------------------
# Each takes (draft, rng, ctx) and changes the draft. Pair-level ones first
# change what the packet says; the others how it is encoded and signed.

WRONG_SECRET = b"not-the-secret"
TARGETS = ("User-Name", "User-Password", "Calling-Station-Id", "Called-Station-Id",
           "Acct-Session-Id", "Acct-Session-Time", "Acct-Status-Type")


@dataclass
class Context:
    dictionary: wire.Dictionary
    world: World


def _target(draft: Draft, rng: random.Random) -> list | None:
    """A pair to mutate, the ones the service reads most often."""
    if not draft.pairs:
        return None
    wanted = [p for p in draft.pairs if p[0] in TARGETS or "h323" in p[0] or "AVPair" in p[0]]
    return rng.choice(wanted or draft.pairs)


def odd_text(rng: random.Random, limit: int = 80) -> str:
    return "".join(rng.choice(ODD_CHARS) if rng.random() < 0.5 else chr(rng.randrange(32, 127))
                   for _ in range(rng.randrange(1, limit)))


def value_length(draft, rng, ctx):
    pair = _target(draft, rng)
    if pair:
        pair[1] = rng.choice(("", "1", "9" * 253, "x" * 253, "h323-conf-id=" + "A" * 240,
                              "0" * 16, "1" * 33, "é" * 126))


def value_binary(draft, rng, ctx):
    pair = _target(draft, rng)
    if pair:
        pair[1] = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 40)))


def value_unicode(draft, rng, ctx):
    pair = _target(draft, rng)
    if pair:
        text = odd_text(rng)
        if isinstance(pair[1], str) and rng.random() < 0.5:   # keep the real value inside
            text = rng.choice((pair[1] + text, text + pair[1], pair[1].replace("0", text[:1])))
        pair[1] = text


def value_number(draft, rng, ctx):
    pair = _target(draft, rng)
    if pair:
        attr = ctx.dictionary.by_name[pair[0]]
        if attr.type == "integer" and rng.random() < 0.5:
            pair[1] = rng.choice((0, 1, 2**31 - 1, 2**31, 2**32 - 1, b"\x01", b"\0\0\0\0\0\x3c"))
        else:
            pair[1] = rng.choice(ODD_NUMBERS)


def h323_prefix(draft, rng, ctx):
    """h323 values with their own name left out, doubled, wrong or alone."""
    pairs = [p for p in draft.pairs if "h323-" in p[0] and isinstance(p[1], str)]
    if not pairs:
        draft.pairs.append(h323(draft.gateway.dialect, "h323-conf-id", "931C146B 0F4411D6"))
        return
    pair = rng.choice(pairs)
    name, _, value = pair[1].partition("=")
    pair[1] = rng.choice((value, f"{name}={name}={value}", f"{rng.choice(H323)}={value}",
                          f"{name}=", "=", f"{name.upper()}={value}", f" {name} = {value} ",
                          f"{name}:{value}", f"{name}={value}\x00junk"))


def h323_times(draft, rng, ctx):
    dialect = draft.gateway.dialect
    name = rng.choice(("h323-setup-time", "h323-connect-time", "h323-disconnect-time"))
    odd = rng.choice(ODD_TIMES)
    draft.pairs.append([h323_name(dialect if dialect != "generic" else "cisco", name),
                        odd if odd.startswith("h323") else f"{name}={odd}"])


def avpairs(draft, rng, ctx):
    name = rng.choice(("Cisco-AVPair", "Quintum-AVPair"))
    for _ in range(rng.randrange(1, 6)):
        draft.pairs.append([name, rng.choice((
            "h323-ivr-out=FOLLOW_ON_FLAG:0", "h323-ivr-out=", "h323-ivr-out", "=",
            "h323-ivr-out=ACCESSCODE:" + odd_text(rng, 20), "a=b=c=d", "h323-ivr-in=x",
            "h323-ivr-out=" + "9" * 230, odd_text(rng), "h323-incoming-conf-id=zz"))])


def _typed_value(attr: wire.AttrDef, rng: random.Random):
    if attr.type in ("integer", "date"):
        return rng.choice((0, 1, 7, 2**32 - 1, rng.getrandbits(32)))
    if attr.type == "ipaddr":
        return ".".join(str(rng.randrange(256)) for _ in range(4))
    if attr.type == "octets":
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 32)))
    return rng.choice((odd_text(rng), attr.name + "=" + odd_text(rng, 30), ""))


def vendor_attributes(draft, rng, ctx):
    """Any attribute of the Cisco, Quintum and Kondge dictionaries."""
    for attr in rng.sample(ctx.dictionary.vendor_attributes(), rng.randrange(1, 6)):
        draft.pairs.insert(rng.randrange(len(draft.pairs) + 1), [attr.name, _typed_value(attr, rng)])


def standard_attributes(draft, rng, ctx):
    wanted = [a for a in ctx.dictionary.standard_attributes()
              if a.code != wire.MESSAGE_AUTHENTICATOR]
    for attr in rng.sample(wanted, rng.randrange(1, 4)):
        draft.pairs.insert(rng.randrange(len(draft.pairs) + 1), [attr.name, _typed_value(attr, rng)])


def kondge_attributes(draft, rng, ctx):
    """A gateway posing as another, or telling the front end not to answer."""
    other = rng.choice(ctx.world.gateways)
    draft.pairs.insert(rng.randrange(len(draft.pairs) + 1), rng.choice((
        ["Kondge-Gateway-Address", other.address], ["Kondge-Gateway-Name", other.name],
        ["Kondge-Gateway-Address", "10.99.99.99"], ["Kondge-No-Answer", 1])))


def duplicate(draft, rng, ctx):
    for _ in range(rng.randrange(1, 4)):
        pair = _target(draft, rng)
        if pair:
            copy = [pair[0], pair[1] if rng.random() < 0.5 else odd_text(rng, 20)]
            draft.pairs.insert(rng.randrange(len(draft.pairs) + 1), copy)


def missing(draft, rng, ctx):
    for _ in range(rng.randrange(1, 4)):
        if draft.pairs:
            draft.pairs.pop(rng.randrange(len(draft.pairs)))


def reorder(draft, rng, ctx):
    rng.shuffle(draft.pairs)


def dialect_mismatch(draft, rng, ctx):
    """Cisco names from a Quintum gateway, Quintum's from a Cisco one."""
    swap = {"Quintum-h323-currency-type": "h323-currency", "Quintum-AVPair": "Cisco-AVPair",
            "Cisco-AVPair": "Quintum-AVPair"}
    for pair in draft.pairs:
        other = swap.get(pair[0]) or (pair[0][len("Quintum-"):] if pair[0].startswith("Quintum-")
                                      else h323_name("quintum", pair[0]))
        if other in ctx.dictionary.by_name:
            pair[0] = other


def status_type(draft, rng, ctx):
    value = rng.choice(("Failed", "Tunnel-Start", 0, 4, 6, 9, 15, 16, 2**32 - 1, b"\x01",
                        b"\0\0\0\x02\0"))
    for pair in draft.pairs:
        if pair[0] == "Acct-Status-Type":
            pair[1] = value
            return
    draft.pairs.insert(0, ["Acct-Status-Type", value])


def password(draft, rng, ctx):
    value = rng.choice(("", "1234\x00", "12345678901234567", "٤٥٦٧", " 1234", "1234 ",
                        "9" * 128, "9" * 140, "\x00" * 16, odd_text(rng, 20)))
    for pair in draft.pairs:
        if pair[0] == "User-Password":
            pair[1] = value
            return
    draft.pairs.append(["User-Password", value])


def wrong_secret(draft, rng, ctx):
    if rng.random() < 0.5:
        draft.sign_secret = WRONG_SECRET
    draft.hide_secret = WRONG_SECRET


def wrong_authenticator(draft, rng, ctx):
    spot = rng.randrange(4, wire.HEADER)
    draft.datagram_ops.append(
        lambda d: d[:spot] + bytes([d[spot] ^ 0x40]) + d[spot + 1:] if len(d) > spot else d)


def message_authenticator_(draft, rng, ctx):
    draft.ma = rng.choice(("good", "wrong", "short", "none"))


def truncated(draft, rng, ctx):
    cut = rng.randrange(1, 60)
    draft.datagram_ops.append(lambda d: d[:max(0, len(d) - cut)])


def over_long(draft, rng, ctx):
    junk = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 400)))
    if rng.random() < 0.3:      # a length field beyond what a packet may be
        draft.datagram_ops.append(lambda d: d[:2] + struct.pack("!H", 4097 + len(junk))
                                  + d[4:] + junk * 12)
    else:                       # bytes after the length field's end (ignored)
        draft.datagram_ops.append(lambda d: (d + junk)[:wire.MAX_PACKET])


def _offsets(body: bytes) -> list[int]:
    offsets, at = [], 0
    while at + 1 < len(body) and body[at + 1] >= 2:
        offsets.append(at)
        at += body[at + 1]
    return offsets


def bad_length(draft, rng, ctx):
    """An attribute's length byte (or a vendor attribute's inner one) that lies."""
    choice = rng.choice((0, 1, 255, -1, +1, "vsa"))

    def lie(body: bytes) -> bytes:
        offsets = _offsets(body)
        if not offsets:
            return body + b"\x01\x00"
        at = rng.choice(offsets)
        if choice == "vsa":
            vsas = [o for o in offsets if body[o] == wire.VENDOR_SPECIFIC and body[o + 1] > 8]
            if not vsas:
                return body
            at = rng.choice(vsas) + 7
            return body[:at] + bytes([(body[at] + rng.choice((-3, -1, 1, 5))) % 256]) + body[at + 1:]
        value = choice if choice in (0, 1, 255) else max(0, body[at + 1] + choice)
        return body[:at + 1] + bytes([value % 256]) + body[at + 2:]
    draft.body_ops.append(lie)


def bad_header(draft, rng, ctx):
    choice = rng.choice(("length-small", "length-short", "code", "code"))
    code = rng.choice((0, 2, 3, 5, 6, 11, 13, 40, 41, 43, 44, 255))
    if choice == "length-small":
        draft.datagram_ops.append(lambda d: d[:2] + struct.pack("!H", rng.randrange(20)) + d[4:])
    elif choice == "length-short":          # claims less: the rest is junk after it
        draft.datagram_ops.append(lambda d: d[:2] + struct.pack("!H", max(20, len(d) - 7)) + d[4:])
    else:
        draft.code = code


def attribute_zero(draft, rng, ctx):
    draft.raw.append((rng.randrange(len(draft.pairs) + 1), b"\x00\x06abcd"))


def many_attributes(draft, rng, ctx):
    count = rng.choice((150, 190, 195, 196, 197, 198, 199, 200, 201, 202, 230))
    for _ in range(max(0, count - len(draft.pairs) - 1)):
        draft.pairs.append([avpair(draft.gateway.dialect), "x=y"])


def bit_flip(draft, rng, ctx):
    flips = [rng.randrange(8 * 200) for _ in range(rng.randrange(1, 5))]

    def flip(d: bytes) -> bytes:
        data = bytearray(d)
        for bit in flips:
            if bit // 8 < len(data):
                data[bit // 8] ^= 1 << (bit % 8)
        return bytes(data)
    if rng.random() < 0.5:
        draft.body_ops.append(flip)          # before it is signed: the signature holds
    else:
        draft.datagram_ops.append(flip)


def random_bytes(draft, rng, ctx):
    size = rng.choice((0, 1, 19, 20, 21, 40, 200, 4096, 4097, rng.randrange(4200)))
    noise = bytes(rng.getrandbits(8) for _ in range(size))
    code = rng.choice((draft.code, rng.getrandbits(8)))
    draft.datagram_ops.append(lambda d: (bytes([code]) + noise[1:]) if noise else b"")


def wrong_port(draft, rng, ctx):
    draft.port = "acct" if draft.port == "auth" else "auth"


def unknown_source(draft, rng, ctx):
    draft.source = ctx.world.unknown_address


def replay(draft, rng, ctx):
    draft.repeat = rng.choice((2, 2, 3))


# name -> (function, weight)
MUTATIONS = {
    "value-length": (value_length, 6), "value-binary": (value_binary, 6),
    "value-unicode": (value_unicode, 6), "value-number": (value_number, 4),
    "h323-prefix": (h323_prefix, 5), "h323-time": (h323_times, 3), "avpair": (avpairs, 3),
    "vendor-attributes": (vendor_attributes, 6), "standard-attributes": (standard_attributes, 3),
    "kondge-attributes": (kondge_attributes, 2), "duplicate": (duplicate, 5),
    "missing": (missing, 5), "reorder": (reorder, 4), "dialect-mismatch": (dialect_mismatch, 3),
    "status-type": (status_type, 2), "password": (password, 3), "wrong-secret": (wrong_secret, 4),
    "wrong-authenticator": (wrong_authenticator, 4),
    "message-authenticator": (message_authenticator_, 4), "truncated": (truncated, 3),
    "over-long": (over_long, 3), "bad-length": (bad_length, 5), "bad-header": (bad_header, 2),
    "attribute-zero": (attribute_zero, 1), "many-attributes": (many_attributes, 2),
    "bit-flip": (bit_flip, 4), "random-bytes": (random_bytes, 2), "wrong-port": (wrong_port, 2),
    "unknown-source": (unknown_source, 2), "replay": (replay, 3),
}
UNMUTATED_SHARE = 0.2


# --- encoding a draft ------------------------------------------------------------------

def encode(draft: Draft, dictionary: wire.Dictionary, pid: int, authenticator: bytes) -> bytes:
    parts = [_encode_pair(pair, draft, dictionary, authenticator) for pair in draft.pairs]
    for position, raw in draft.raw:
        parts.insert(min(position, len(parts)), raw)
    body = b"".join(parts)
    for op in draft.body_ops:
        body = op(body)
    ma_at = None
    if draft.ma in ("good", "wrong"):
        ma_at, body = wire.HEADER + len(body), body + bytes([wire.MESSAGE_AUTHENTICATOR, 18]) + bytes(16)
    elif draft.ma == "short":
        body += bytes([wire.MESSAGE_AUTHENTICATOR, 10]) + bytes(8)
    accounting = draft.code == wire.ACCOUNTING_REQUEST
    packet = wire.header(draft.code, pid, wire.HEADER + len(body),
                         bytes(16) if accounting else authenticator) + body
    if ma_at is not None:
        mac = wire.message_authenticator(packet, draft.sign_secret, ma_at)
        if draft.ma == "wrong":
            mac = bytes([mac[0] ^ 1]) + mac[1:]
        packet = packet[:ma_at + 2] + mac + packet[ma_at + 18:]
    if accounting:
        packet = packet[:4] + wire.accounting_authenticator(packet, draft.sign_secret) + packet[20:]
    for op in draft.datagram_ops:
        packet = op(packet)
    # the id stays the one given, whatever the mutations did: answers are matched by it
    return packet[:1] + bytes([pid]) + packet[2:] if len(packet) > 1 else packet


def _encode_pair(pair, draft, dictionary, authenticator) -> bytes:
    name, value = pair
    attr = dictionary.by_name[name]
    if name == "User-Password":
        plain = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")
        value = wire.hide_password(plain, draft.hide_secret, authenticator)
    return wire.encode_pair(attr, value, dictionary)


# --- batches ---------------------------------------------------------------------------

class Generator:
    """Batches of probes, each a function of (seed, batch number)."""

    def __init__(self, world: World, dictionary: wire.Dictionary, seed: int):
        self.ctx = Context(dictionary, world)
        self.seed = seed

    def batch(self, number: int, size: int) -> list[Probe]:
        rng = random.Random(f"kondge-fuzz:{self.seed}:{number}")
        slots: dict[str, int] = {}
        calls = [new_call(rng, self.ctx.world) for _ in range(CALLS_AT_ONCE)]
        probes = []
        for index in range(size):
            template, draft = self._next_draft(rng, calls)
            kinds = self._mutate(draft, rng)
            probes.append(self._probe(number, index, template, kinds, draft, rng, slots))
        return probes

    def _next_draft(self, rng, calls) -> tuple[str, Draft]:
        if rng.random() < 0.04:
            return other_draft(rng, self.ctx.world)
        i = rng.randrange(len(calls))
        call = calls[i]
        step = call.steps.pop(0)
        if not call.steps:
            calls[i] = new_call(rng, self.ctx.world)
        return call_draft(call, step, rng)

    def _mutate(self, draft: Draft, rng: random.Random) -> tuple:
        if rng.random() < UNMUTATED_SHARE:
            return ("none",)
        names = list(MUTATIONS)
        kinds = rng.choices(names, weights=[MUTATIONS[n][1] for n in names],
                            k=rng.choice((1, 1, 1, 2, 2, 3)))
        kinds = tuple(dict.fromkeys(kinds))
        for kind in kinds:
            MUTATIONS[kind][0](draft, rng, self.ctx)
        return kinds

    def _probe(self, number, index, template, kinds, draft, rng, slots) -> Probe:
        n = slots.get(draft.source, 0)
        slots[draft.source] = n + 1
        authenticator = rng.getrandbits(128).to_bytes(16, "big")
        data = encode(draft, self.ctx.dictionary, n % 256, authenticator)
        gateway = self.ctx.world.gateway_at(draft.source)
        silent = wire.silent_reasons(data, draft.port, gateway.secret if gateway else None,
                                     gateway.require_ma if gateway else False)
        return Probe(number, index, template, kinds, draft.source, draft.port,
                     (n // 256) % SOCKETS, data, draft.repeat, tuple(silent))
