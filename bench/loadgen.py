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
the cards, and runs one event loop (epoll): no threads, no locks. pyrad
encodes the packets, as in tests/support/radius.py; a reply is matched by
socket and packet id and judged by its code. A packet not answered within
`timeout` is lost and its call abandoned (counted, never retried: the
figures show the server, not a retry policy).

Timings are floats (seconds, milliseconds): they are never money.
"""

import multiprocessing
import os
import resource
import selectors
import socket
import time
from dataclasses import dataclass, field
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
    latency_ms: dict = field(default_factory=lambda: {t: [] for t in PACKET_TYPES})
    uncertain: int = 0                  # abandoned with the billed Stop unanswered
    billed_stops: int = 0               # billed Stops answered (= CDRs expected)
    window: float = 0.0                 # from the step's start to its last answer
    lag_ms: float = 0.0                 # how late the schedule ran at worst
    cpu_seconds: float = 0.0            # the generator's own CPU time


class _Call:
    __slots__ = ("card", "pin", "gateway", "conf", "destination", "stage")

    def __init__(self, card, pin, gateway, conf, destination):
        self.card, self.pin, self.gateway = card, pin, gateway
        self.conf, self.destination, self.stage = conf, destination, 0


class _Gateway:
    def __init__(self, address, secret):
        self.secret = secret.encode()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((address, 0))
        self.sock.setblocking(False)
        self.next_id = 0
        self.waiting: dict[int, tuple] = {}     # packet id -> (call, sent at, type)

    def free_id(self) -> int | None:
        for _ in range(256):
            pid = self.next_id
            self.next_id = (self.next_id + 1) & 0xFF
            if pid not in self.waiting:
                return pid
        return None


def _conf_id(seq: int, worker: int) -> str:
    h = f"{worker:08X}{seq:08X}" + os.urandom(8).hex().upper()
    return "h323-conf-id=" + " ".join(h[i:i + 8] for i in range(0, 32, 8))


class _Worker:
    def __init__(self, target: Target, index: int, dictionary):
        self.t = target
        self.index = index
        self.dict = dictionary
        self.gateways = [_Gateway(a, s) for a, s in target.gateways]
        self.selector = selectors.DefaultSelector()
        for gw in self.gateways:
            self.selector.register(gw.sock, selectors.EVENT_READ, gw)
        self.seq = 0
        self.outstanding = 0

    def _encode(self, call: _Call, gw: _Gateway, pid: int) -> bytes:
        kind, leg = SEQUENCE[call.stage]
        if kind in ("stage1", "stage2"):
            pkt = packet.AuthPacket(code=packet.AccessRequest, secret=gw.secret,
                                    dict=self.dict, id=pid)
            pkt.AddAttribute("User-Name", call.card)
            pkt["User-Password"] = pkt.PwCrypt(call.pin)
            pkt.AddAttribute("Calling-Station-Id", CALLER)
            pkt.AddAttribute("Called-Station-Id",
                             ACCESS_NUMBER if kind == "stage1" else call.destination)
            pkt.AddAttribute("h323-conf-id", call.conf)
            return pkt.RequestPacket()
        pkt = packet.AcctPacket(code=packet.AccountingRequest, secret=gw.secret,
                                dict=self.dict, id=pid)
        pkt.AddAttribute("Acct-Status-Type", "Start" if kind == "start" else "Stop")
        pkt.AddAttribute("Acct-Session-Id", call.conf[-8:])
        pkt.AddAttribute("User-Name", call.card)
        pkt.AddAttribute("Calling-Station-Id", CALLER)
        pkt.AddAttribute("Called-Station-Id",
                         call.destination if leg == "originate" else ACCESS_NUMBER)
        pkt.AddAttribute("h323-conf-id", call.conf)
        pkt.AddAttribute("h323-call-origin", f"h323-call-origin={leg}")
        if kind == "stop":
            talk = self.t.talk_seconds + (20 if leg == "answer" else 0)
            pkt.AddAttribute("Acct-Session-Time", talk)
        pkt.AddAttribute("Acct-Delay-Time", 0)
        return pkt.RequestPacket()

    def _send(self, call: _Call, now: float, res: StepResult) -> bool:
        gw = self.gateways[call.gateway]
        pid = gw.free_id()
        kind = SEQUENCE[call.stage][0]
        if pid is None:                 # 256 packets waiting on one gateway
            res.lost[kind] += 1
            return False
        data = self._encode(call, gw, pid)
        port = self.t.auth_port if kind in ("stage1", "stage2") else self.t.acct_port
        try:
            gw.sock.sendto(data, (self.t.host, port))
        except OSError:
            res.lost[kind] += 1
            return False
        gw.waiting[pid] = (call, now, kind)
        return True

    def _start_call(self, res: StepResult, now: float):
        if self.outstanding >= MAX_OUTSTANDING_CALLS:
            res.skipped += 1
            return
        self.seq += 1
        card, pin = self.t.cards[self.seq % len(self.t.cards)]
        call = _Call(card, pin, self.seq % len(self.gateways), _conf_id(self.seq, self.index),
                     self.t.destinations[self.seq % len(self.t.destinations)])
        res.started += 1
        if self._send(call, now, res):
            self.outstanding += 1

    def _abandon(self, call: _Call, res: StepResult):
        self.outstanding -= 1
        if call.stage == BILLED_STOP:
            res.uncertain += 1

    def _answer(self, gw: _Gateway, data: bytes, now: float, res: StepResult, started: float):
        if len(data) < 20:
            return
        entry = gw.waiting.pop(data[1], None)
        if entry is None:
            return                      # an answer after its packet was given up
        call, sent, kind = entry
        res.latency_ms[kind].append((now - sent) * 1000.0)
        res.window = max(res.window, now - started)
        expected = packet.AccessAccept if kind in ("stage1", "stage2") else \
            packet.AccountingResponse
        if data[0] != expected:
            res.failed[kind] += 1
            self.outstanding -= 1
            return
        if call.stage == BILLED_STOP:
            res.billed_stops += 1
        call.stage += 1
        if call.stage == len(SEQUENCE):
            res.completed += 1
            self.outstanding -= 1
            return
        if not self._send(call, now, res):
            self._abandon(call, res)

    def _expire(self, now: float, res: StepResult):
        for gw in self.gateways:
            late = [pid for pid, (_c, sent, _k) in gw.waiting.items()
                    if now - sent > self.t.timeout]
            for pid in late:
                call, _sent, kind = gw.waiting.pop(pid)
                res.lost[kind] += 1
                self._abandon(call, res)

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
            for key, _ev in self.selector.select(max(wait, 0.0)):
                gw = key.data
                while True:
                    try:
                        data = gw.sock.recv(4096)
                    except BlockingIOError:
                        break
                    self._answer(gw, data, time.monotonic(), res, started)
            if now >= next_expire:
                self._expire(now, res)
                next_expire = now + 0.1
        self._expire(time.monotonic() + self.t.timeout + 1, res)   # give up the rest
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
    all_latency = sorted(v for p in parts for k in PACKET_TYPES for v in p.latency_ms[k])
    return {
        "offered_calls_per_second": first.rate, "seconds": first.seconds,
        **total,
        "calls_per_second": round(total["completed"] / window, 1),
        "packets_per_second": round(answered / window, 1),
        "p99_ms_all": round(_percentile(all_latency, 0.99), 2),
        "failed": failed, "lost": lost,
        "failed_total": sum(failed.values()), "lost_total": sum(lost.values()),
        "latency": latency, "window_seconds": round(window, 2),
        "schedule_lag_ms_max": round(max(p.lag_ms for p in parts), 1),
        "generator_cpu_seconds": round(sum(p.cpu_seconds for p in parts), 2),
    }
