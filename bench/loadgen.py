"""An open-loop generator of complete prepaid calls, in several processes.

A call is what a Cisco gateway sends: stage 1 (card login on the access
number), stage 2 (the destination), Start of the incoming (answer) and the
outgoing (originate) leg, Stop of the outgoing leg with the talk time, Stop
of the incoming leg. Each packet is sent when the one before it is
answered. Calls start on a fixed schedule (the offered rate), whether or
not earlier ones are answered: a slow server shows as latency and lost
packets, not as a slower generator.

Each process owns a share of the gateways (one UDP socket bound to each
gateway's loopback address, so the server sees that gateway) and a share of
the cards, and runs one event loop (epoll): no threads, no locks. A call's
six packets are encoded by hand when it starts, byte for byte as pyrad
encodes them in tests/support/radius.py (the unit tests compare the two),
so that sending one costs an id byte and, for accounting, one MD5: the
generator's CPU is the server's to use on this small machine. A reply is
matched by socket and packet id and judged by its code. A packet not
answered within `timeout` is lost and its call abandoned (counted, never
retried: the figures show the server, not a retry policy). Of the lost,
`unsent` counts the packets never sent (no packet id free on the gateway's
socket, or the send failed: the generator's limit, not the server's) and
`late` those answered after they were given up, while the step still
ran (at least so many: the server answered too slowly, not never).

Timings are floats (seconds, milliseconds): they are never money.
"""

import multiprocessing
import os
import resource
import select
import socket
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from hashlib import md5
from pathlib import Path

from pyrad import packet
from pyrad.dictionary import Dictionary

DICTIONARY_FILE = Path(__file__).resolve().parent.parent / "tests" / "support" / "dictionary"
PACKET_TYPES = ("stage1", "stage2", "start", "stop")
ACCESS_NUMBER = "18005550100"
CALLER = "15550001111"
# one call: (packet type, leg) in the order a gateway sends them
SEQUENCE = (("stage1", None), ("stage2", None), ("start", "answer"), ("start", "originate"),
            ("stop", "originate"), ("stop", "answer"))
BILLED_STOP = 4                    # index of the billed Stop in SEQUENCE
MAX_OUTSTANDING_CALLS = 20000      # per process: beyond it a call is not started
ZERO_AUTHENTICATOR = bytes(16)


@dataclass
class Target:
    """Where the packets go and what they carry."""

    auth_port: int
    acct_port: int
    gateways: list          # [(address, secret)]
    cards: list             # [(number, pin)]
    destinations: list      # numbers to call (each has a rate)
    talk_seconds: int = 60
    timeout: float = 3.0
    host: str = "127.0.0.1"


@dataclass
class Step:
    rate: float             # offered calls per second (all processes together)
    seconds: float


@dataclass
class StepResult:
    """One process's figures for one step (merged by `merge`)."""

    rate: float
    seconds: float
    started: int = 0
    completed: int = 0
    skipped: int = 0                    # not started: too many calls outstanding
    failed: dict = field(default_factory=lambda: dict.fromkeys(PACKET_TYPES, 0))
    lost: dict = field(default_factory=lambda: dict.fromkeys(PACKET_TYPES, 0))
    unsent: dict = field(default_factory=lambda: dict.fromkeys(PACKET_TYPES, 0))   # of lost
    late: dict = field(default_factory=lambda: dict.fromkeys(PACKET_TYPES, 0))     # of lost
    latency_ms: dict = field(default_factory=lambda: {t: [] for t in PACKET_TYPES})
    uncertain: int = 0                  # abandoned with the billed Stop unanswered
    billed_stops: int = 0               # billed Stops answered (= CDRs expected)
    window: float = 0.0                 # from the step's start to its last answer
    lag_ms: float = 0.0                 # how late the schedule ran at worst
    cpu_seconds: float = 0.0            # the generator's own CPU time


def _key(dictionary, name: str):
    """An attribute's number as pyrad keys it: n, or (vendor, n) for a vendor's attribute."""
    attr = dictionary.attributes[name]
    return (dictionary.vendors.GetForward(attr.vendor), attr.code) if attr.vendor else attr.code


def _attribute(key, value: bytes) -> bytes:
    """One encoded attribute; a vendor's is wrapped in Vendor-Specific (RFC 2865, 5.26)."""
    if isinstance(key, tuple):
        inner = _attribute(key[1], value)
        return struct.pack("!BBL", 26, len(inner) + 6, key[0]) + inner
    if len(value) > 253:
        raise ValueError(f"attribute {key}: {len(value)} bytes is too long")
    return bytes((key, len(value) + 2)) + value


def _hide(password: str, secret: bytes, authenticator: bytes) -> bytes:
    """User-Password as RFC 2865, 5.2 hides it (pyrad's PwCrypt)."""
    buf = password.encode()
    buf += b"\0" * (-len(buf) % 16)
    out, last = b"", authenticator
    for i in range(0, len(buf), 16):
        pad = int.from_bytes(md5(secret + last).digest(), "big")
        last = (pad ^ int.from_bytes(buf[i:i + 16], "big")).to_bytes(16, "big")
        out += last
    return out


class Encoder:
    """A call's six packets, encoded by hand when the call starts, byte for byte as
    pyrad encodes them (tests/unit/test_loadgen.py decodes and compares them).

    A packet is kept as (code, rest, attributes) without its id: at send time an
    Access-Request only takes its id byte (its authenticator is random and hides
    the password whatever the id), an Accounting-Request also its Request
    Authenticator, an MD5 over the packet with the id and the secret (RFC 2866, 3).
    No Message-Authenticator is sent (pyrad adds none unless asked)."""

    def __init__(self, dictionary, talk_seconds: int):
        self.key = {name: _key(dictionary, name) for name in (
            "User-Name", "User-Password", "Calling-Station-Id", "Called-Station-Id",
            "h323-conf-id", "Acct-Status-Type", "Acct-Session-Id", "h323-call-origin",
            "Acct-Session-Time", "Acct-Delay-Time")}
        status = dictionary.attributes["Acct-Status-Type"].values
        self.status = {kind: self._raw("Acct-Status-Type", status.GetForward(value))
                       for kind, value in (("start", "Start"), ("stop", "Stop"))}
        self.calling = self._string("Calling-Station-Id", CALLER)
        self.access_number = self._string("Called-Station-Id", ACCESS_NUMBER)
        self.origin = {leg: self._string("h323-call-origin", f"h323-call-origin={leg}")
                       for leg in ("answer", "originate")}
        self.talk = {leg: self._raw("Acct-Session-Time", struct.pack("!L", talk_seconds + extra))
                     for leg, extra in (("answer", 20), ("originate", 0))}
        self.delay = self._raw("Acct-Delay-Time", struct.pack("!L", 0))

    def _raw(self, name: str, value: bytes) -> bytes:
        return _attribute(self.key[name], value)

    def _string(self, name: str, value: str) -> bytes:
        return _attribute(self.key[name], value.encode())

    def call(self, card: str, pin: str, secret: bytes, conf: str, destination: str,
             authenticators: tuple) -> tuple:
        """The six packets (SEQUENCE) of one call; `authenticators`: one for each stage."""
        user, conf_attr = self._string("User-Name", card), self._string("h323-conf-id", conf)
        called = self._string("Called-Station-Id", destination)
        session = self._string("Acct-Session-Id", conf[-8:])
        packets = []
        for kind, leg in SEQUENCE:
            if leg is None:
                auth = authenticators[kind == "stage2"]
                attrs = (user + _attribute(self.key["User-Password"], _hide(pin, secret, auth))
                         + self.calling + (self.access_number if kind == "stage1" else called)
                         + conf_attr)
                packets.append((packet.AccessRequest,
                                struct.pack("!H", 20 + len(attrs)) + auth + attrs, None))
                continue
            attrs = (self.status[kind] + session + user + self.calling
                     + (called if leg == "originate" else self.access_number) + conf_attr
                     + self.origin[leg] + (self.talk[leg] if kind == "stop" else b"")
                     + self.delay)
            packets.append((packet.AccountingRequest, struct.pack("!H", 20 + len(attrs)), attrs))
        return tuple(packets)


def datagram(prepared: tuple, pid: int, secret: bytes) -> bytes:
    """A packet from Encoder.call, with its id (and its authenticator if it is accounting)."""
    code, rest, attrs = prepared
    head = bytes((code, pid)) + rest
    if attrs is None:
        return head
    return head + md5(head + ZERO_AUTHENTICATOR + attrs + secret).digest() + attrs


class _Call:
    __slots__ = ("gateway", "packets", "stage")

    def __init__(self, gateway, packets):
        self.gateway, self.packets, self.stage = gateway, packets, 0


class _Gateway:
    def __init__(self, address, secret):
        self.secret = secret.encode()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((address, 0))
        self.sock.setblocking(False)
        self.next_id = 0
        self.waiting: dict[int, tuple] = {}     # packet id -> (call, sent at)
        self.given_up: dict[int, str] = {}      # packet id -> its type, until reused

    def free_id(self) -> int | None:
        for _ in range(256):
            pid = self.next_id
            self.next_id = (self.next_id + 1) & 0xFF
            if pid not in self.waiting:
                return pid
        return None


def _conf_id(seq: int, worker: int, random8: bytes) -> str:
    h = f"{worker:08X}{seq:08X}" + random8.hex().upper()
    return "h323-conf-id=" + " ".join(h[i:i + 8] for i in range(0, 32, 8))


# each stage's packet type (its index in PACKET_TYPES), port and expected answer
_KIND = tuple(PACKET_TYPES.index(kind) for kind, _leg in SEQUENCE)
_ACCESS = tuple(leg is None for _kind, leg in SEQUENCE)
_EXPECTED = tuple(packet.AccessAccept if a else packet.AccountingResponse for a in _ACCESS)


class _Worker:
    def __init__(self, target: Target, index: int, dictionary):
        self.t = target
        self.index = index
        self.encoder = Encoder(dictionary, target.talk_seconds)
        self.gateways = [_Gateway(a, s) for a, s in target.gateways]
        self.ports = tuple((target.host, target.auth_port if a else target.acct_port)
                           for a in _ACCESS)
        self.poller = select.epoll()
        self.by_fd = {}
        for gw in self.gateways:
            self.poller.register(gw.sock.fileno(), select.EPOLLIN)
            self.by_fd[gw.sock.fileno()] = gw
        self.sent = deque()             # (call, sent at) as sent, with their gateway and id
        self.latency = tuple([] for _ in PACKET_TYPES)  # seconds, by PACKET_TYPES index
        self.last_answer = None
        self.seq = 0
        self.outstanding = 0

    def close(self):
        self.poller.close()
        for gw in self.gateways:
            gw.sock.close()

    @staticmethod
    def _unsent(call: _Call, res: StepResult) -> bool:
        kind = PACKET_TYPES[_KIND[call.stage]]
        res.lost[kind] += 1
        res.unsent[kind] += 1
        return False

    def _send(self, call: _Call, now: float, res: StepResult) -> bool:
        gw = self.gateways[call.gateway]
        pid = gw.free_id()
        if pid is None:                 # 256 packets waiting on one gateway
            return self._unsent(call, res)
        try:
            gw.sock.sendto(datagram(call.packets[call.stage], pid, gw.secret),
                           self.ports[call.stage])
        except OSError:
            return self._unsent(call, res)
        gw.given_up.pop(pid, None)      # an answer with this id is now the new packet's
        entry = gw.waiting[pid] = (call, now)
        self.sent.append((entry, gw, pid))
        return True

    def _start_call(self, res: StepResult, now: float):
        if self.outstanding >= MAX_OUTSTANDING_CALLS:
            res.skipped += 1
            return
        self.seq += 1
        card, pin = self.t.cards[self.seq % len(self.t.cards)]
        gateway = self.seq % len(self.gateways)
        rnd = os.urandom(40)
        call = _Call(gateway, self.encoder.call(
            card, pin, self.gateways[gateway].secret, _conf_id(self.seq, self.index, rnd[:8]),
            self.t.destinations[self.seq % len(self.t.destinations)], (rnd[8:24], rnd[24:])))
        res.started += 1
        if self._send(call, now, res):
            self.outstanding += 1

    def _abandon(self, call: _Call, res: StepResult):
        self.outstanding -= 1
        if call.stage == BILLED_STOP:
            res.uncertain += 1

    def _receive(self, gw: _Gateway, res: StepResult):
        """One answer from a socket that epoll found readable. A second one waits
        for the next poll, which returns at once (level-triggered): with dozens of
        gateways a socket rarely holds two, and reading until EAGAIN cost one failed
        recv and its exception for nearly every answer."""
        try:
            data = gw.sock.recv(4096)
        except BlockingIOError:
            return
        self._answer(gw, data, time.monotonic(), res)

    def _answer(self, gw: _Gateway, data: bytes, now: float, res: StepResult):
        if len(data) < 20:
            return
        entry = gw.waiting.pop(data[1], None)
        if entry is None:               # an answer after its packet was given up
            kind = gw.given_up.pop(data[1], None)
            if kind is not None:
                res.late[kind] += 1
            return
        call, sent = entry
        stage = call.stage
        self.latency[_KIND[stage]].append(now - sent)
        self.last_answer = now
        if data[0] != _EXPECTED[stage]:
            res.failed[PACKET_TYPES[_KIND[stage]]] += 1
            self.outstanding -= 1
            return
        if stage == BILLED_STOP:
            res.billed_stops += 1
        call.stage = stage = stage + 1
        if stage == len(SEQUENCE):
            res.completed += 1
            self.outstanding -= 1
            return
        if not self._send(call, now, res):
            self._abandon(call, res)

    def _expire(self, now: float, res: StepResult):
        sent, deadline = self.sent, now - self.t.timeout
        while sent and sent[0][0][1] < deadline:
            entry, gw, pid = sent.popleft()
            if gw.waiting.get(pid) is entry:    # not answered since
                del gw.waiting[pid]
                kind = gw.given_up[pid] = PACKET_TYPES[_KIND[entry[0].stage]]
                res.lost[kind] += 1
                self._abandon(entry[0], res)

    def run_step(self, step: Step, share: int, processes: int) -> StepResult:
        res = StepResult(step.rate, step.seconds)
        cpu0 = _cpu()
        started = time.monotonic()
        interval = processes / step.rate
        first = started + interval * share / processes
        end = started + step.seconds
        n = 0
        next_expire = started + 0.1
        drain_until = end + self.t.timeout + 0.5
        self.last_answer = None
        for gw in self.gateways:        # a late answer counts in the step that sent it
            gw.given_up.clear()
        for values in self.latency:
            values.clear()
        poll, by_fd = self.poller.poll, self.by_fd
        while True:
            now = time.monotonic()
            while now < end:
                due = first + n * interval
                if due > now:
                    break
                res.lag_ms = max(res.lag_ms, (now - due) * 1000.0)
                self._start_call(res, now)
                n += 1
            if now >= end and self.outstanding == 0:
                break
            if now >= drain_until:
                break
            wait = min(first + n * interval, next_expire) - now if now < end else 0.05
            for fd, _ev in poll(max(wait, 0.0)):
                self._receive(by_fd[fd], res)
            if now >= next_expire:
                self._expire(now, res)
                next_expire = now + 0.1
        self._expire(time.monotonic() + self.t.timeout + 1, res)   # give up the rest
        res.latency_ms = {kind: [v * 1000.0 for v in values]
                          for kind, values in zip(PACKET_TYPES, self.latency)}
        if self.last_answer is not None:
            res.window = self.last_answer - started
        res.cpu_seconds = _cpu() - cpu0
        return res


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _split(items: list, parts: int, index: int) -> list:
    return items[index::parts]


def _process(target: Target, steps, index, processes, barrier, out):
    try:
        share = Target(target.auth_port, target.acct_port,
                       _split(target.gateways, processes, index),
                       _split(target.cards, processes, index), target.destinations,
                       target.talk_seconds, target.timeout, target.host)
        worker = _Worker(share, index, Dictionary(str(DICTIONARY_FILE)))
        results = []
        for step in steps:
            barrier.wait(timeout=120)
            results.append(worker.run_step(step, index, processes))
        out.put((index, results, None))
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        out.put((index, [], repr(exc)))


def run(target: Target, steps: list, processes: int, on_step=None) -> list:
    """Run the steps one after another; return one merged dict per step.

    `on_step(i, step)` is told when each step starts (progress on stderr)."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(processes + 1)
    out = ctx.Queue()
    procs = [ctx.Process(target=_process, args=(target, steps, i, processes, barrier, out),
                         daemon=True) for i in range(processes)]
    for p in procs:
        p.start()
    try:
        for i, step in enumerate(steps):
            barrier.wait(timeout=120)
            if on_step:
                on_step(i, step)
        per_process = []
        for _ in procs:
            index, results, error = out.get(timeout=sum(s.seconds for s in steps) + 300)
            if error:
                raise RuntimeError(f"load generator process {index} failed: {error}")
            per_process.append(results)
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()
    return [merge([r[i] for r in per_process]) for i in range(len(steps))]


def _percentile(sorted_values: list, q: float) -> float:
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, int(round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def merge(parts: list) -> dict:
    first = parts[0]
    window = max(max(p.window for p in parts), first.seconds)
    latency = {}
    answered = 0
    for kind in PACKET_TYPES:
        values = sorted(v for p in parts for v in p.latency_ms[kind])
        answered += len(values)
        latency[kind] = {"count": len(values), "p50_ms": round(_percentile(values, 0.50), 2),
                         "p99_ms": round(_percentile(values, 0.99), 2),
                         "max_ms": round(values[-1], 2) if values else 0.0}
    total = {k: sum(getattr(p, k) for p in parts)
             for k in ("started", "completed", "skipped", "uncertain", "billed_stops")}
    failed = {k: sum(p.failed[k] for p in parts) for k in PACKET_TYPES}
    lost = {k: sum(p.lost[k] for p in parts) for k in PACKET_TYPES}
    unsent = {k: sum(p.unsent[k] for p in parts) for k in PACKET_TYPES}
    late = {k: sum(p.late[k] for p in parts) for k in PACKET_TYPES}
    all_latency = sorted(v for p in parts for k in PACKET_TYPES for v in p.latency_ms[k])
    return {
        "offered_calls_per_second": first.rate, "seconds": first.seconds,
        **total,
        "calls_per_second": round(total["completed"] / window, 1),
        "packets_per_second": round(answered / window, 1),
        "p99_ms_all": round(_percentile(all_latency, 0.99), 2),
        "failed": failed, "lost": lost, "unsent": unsent, "late": late,
        "failed_total": sum(failed.values()), "lost_total": sum(lost.values()),
        "latency": latency, "window_seconds": round(window, 2),
        "schedule_lag_ms_max": round(max(p.lag_ms for p in parts), 1),
        "generator_cpu_seconds": round(sum(p.cpu_seconds for p in parts), 2),
    }


def describe_lost(merged: dict) -> str:
    """"lost N" with the packet types lost and, of them, how many were
    answered late or never sent: the line a step's progress message ends in."""
    total = merged["lost_total"]
    dropped = merged.get("kernel_udp_drops") or 0     # the bench's own count, if it kept one
    kernel = f"; the kernel dropped {dropped} datagrams, receive buffers full" if dropped else ""
    if not total:
        return f"lost 0{kernel}"
    kinds = ", ".join(f"{k} {n}" for k, n in merged["lost"].items() if n)
    return (f"lost {total} ({kinds}; of them late {sum(merged['late'].values())}, "
            f"unsent {sum(merged['unsent'].values())}){kernel}")
