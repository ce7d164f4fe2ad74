"""bench/loadgen.py sends the packets pyrad would: decoded with pyrad against
tests/support/dictionary, every attribute is what the call says, the
authenticators and the hidden password hold with the gateway's secret, and
the bytes are those pyrad encodes for the same id and authenticator. Over
loopback sockets only (the "server" here is two sockets of the test).
"""

import random
import select
import socket
import threading
import time

import pytest
from pyrad import packet

from bench import loadgen
from tests.support.radius import DICTIONARY

GATEWAYS = [("127.0.0.1", "first-secret"), ("127.0.0.2", "second-secret-longer-than-16")]
CARDS = [("812345678903", "0042"), ("800000000017", "9999")]
DESTINATIONS = ["12025550123", "4420795000"]
WORKER = 3


def expected_pairs(kind, leg, card, pin, conf, destination):
    """The pairs of a (packet type, leg) in the order the generator added them
    with pyrad before it encoded by hand."""
    if leg is None:
        return [("User-Name", card), ("User-Password", pin), ("Calling-Station-Id", loadgen.CALLER),
                ("Called-Station-Id", loadgen.ACCESS_NUMBER if kind == "stage1" else destination),
                ("h323-conf-id", conf)]
    pairs = [("Acct-Status-Type", "Start" if kind == "start" else "Stop"),
             ("Acct-Session-Id", conf[-8:]), ("User-Name", card),
             ("Calling-Station-Id", loadgen.CALLER),
             ("Called-Station-Id", destination if leg == "originate" else loadgen.ACCESS_NUMBER),
             ("h323-conf-id", conf), ("h323-call-origin", f"h323-call-origin={leg}")]
    if kind == "stop":
        pairs.append(("Acct-Session-Time", 60 + (20 if leg == "answer" else 0)))
    return pairs + [("Acct-Delay-Time", 0)]


def pyrad_bytes(pairs, secret, pid, authenticator, access):
    """What pyrad encodes for these pairs (an Access-Request with this authenticator)."""
    if access:
        pkt = packet.AuthPacket(code=packet.AccessRequest, secret=secret, dict=DICTIONARY,
                                id=pid, authenticator=authenticator)
    else:
        pkt = packet.AcctPacket(code=packet.AccountingRequest, secret=secret, dict=DICTIONARY,
                                id=pid)
    for name, value in pairs:
        if name == "User-Password":
            pkt[name] = pkt.PwCrypt(value)
        else:
            pkt.AddAttribute(name, value)
    return pkt.RequestPacket()


class Server:
    """Two sockets on loopback: the auth and the accounting port."""

    def __init__(self):
        self.socks = []
        for _ in range(2):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.settimeout(2.0)
            self.socks.append(s)
        self.auth, self.acct = self.socks

    def port(self, which):
        return which.getsockname()[1]

    def receive(self, which):
        return which.recvfrom(4096)

    def nothing_waiting(self):
        return not select.select(self.socks, [], [], 0.05)[0]

    def answer(self, which, data, addr, code=None):
        if code is None:
            code = packet.AccessAccept if which is self.auth else packet.AccountingResponse
        which.sendto(bytes((code, data[1], 0, 20)) + bytes(16), addr)

    def close(self):
        for s in self.socks:
            s.close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def make_worker(server, gateways=GATEWAYS, timeout=3.0):
    target = loadgen.Target(server.port(server.auth), server.port(server.acct), gateways, CARDS,
                            DESTINATIONS, talk_seconds=60, timeout=timeout)
    return loadgen._Worker(target, WORKER, DICTIONARY)


@pytest.fixture
def worker(server):
    w = make_worker(server)
    yield w
    w.close()


def gateway_of(worker, addr):
    return next(gw for gw in worker.gateways if gw.sock.getsockname() == addr)


def play_call(server, worker, res):
    """Start one call and answer its six packets; returns [(data, addr)] as received."""
    worker._start_call(res, time.monotonic())
    seen = []
    for kind, leg in loadgen.SEQUENCE:
        which = server.auth if leg is None else server.acct
        data, addr = server.receive(which)
        seen.append((data, addr))
        server.answer(which, data, addr)
        worker._receive(gateway_of(worker, addr), res)
    assert server.nothing_waiting()
    return seen


def test_the_six_packets_are_what_pyrad_sends_and_verify_with_the_gateways_secret(server,
                                                                                   worker):
    res = loadgen.StepResult(1, 1)
    for seq in (1, 2, 3, 4):
        received = play_call(server, worker, res)
        card, pin = CARDS[seq % len(CARDS)]
        address, secret = GATEWAYS[seq % len(GATEWAYS)]
        secret = secret.encode()
        destination = DESTINATIONS[seq % len(DESTINATIONS)]
        conf = None
        authenticators = set()
        for (kind, leg), (data, addr) in zip(loadgen.SEQUENCE, received):
            assert addr[0] == address                       # the gateway's source address
            access = leg is None
            cls = packet.AuthPacket if access else packet.AcctPacket
            pkt = cls(secret=secret, dict=DICTIONARY, packet=data)
            assert pkt.code == (packet.AccessRequest if access else packet.AccountingRequest)
            conf = conf or pkt["h323-conf-id"][0]
            groups = conf.removeprefix("h323-conf-id=").split(" ")
            assert groups[:2] == [f"{WORKER:08X}", f"{seq:08X}"] and len(groups) == 4
            assert all(len(g) == 8 and int(g, 16) >= 0 for g in groups)
            pairs = expected_pairs(kind, leg, card, pin, conf, destination)
            assert list(pkt.keys()) == [name for name, _value in pairs]   # order too
            for name, value in pairs:
                got = pkt[name]
                if name == "User-Password":
                    got = [pkt.PwDecrypt(got[0])]
                assert got == [value], name
            if access:
                authenticators.add(pkt.authenticator)
            else:
                assert pkt.VerifyAcctRequest()
                assert not packet.AcctPacket(secret=b"wrong", dict=DICTIONARY,
                                             packet=data).VerifyAcctRequest()
            assert data == pyrad_bytes(pairs, secret, data[1], pkt.authenticator, access)
        assert len(authenticators) == 2                     # random, one per Access-Request
    assert (res.started, res.completed, res.billed_stops) == (4, 4, 4)
    assert [len(v) for v in worker.latency] == [4, 4, 8, 8]


def test_a_password_longer_than_one_block_is_hidden_as_pyrad_hides_it():
    pkt = packet.AuthPacket(secret=b"s3cret", dict=DICTIONARY, authenticator=bytes(range(16)))
    for password in ("", "1", "0123456789abcdef", "0123456789abcdefg", "x" * 40):
        assert loadgen._hide(password, b"s3cret", bytes(range(16))) == pkt.PwCrypt(password)


def test_ids_are_unique_among_a_sockets_outstanding_packets(server):
    worker = make_worker(server, gateways=GATEWAYS[:1])
    try:
        res = loadgen.StepResult(1, 1)
        for _ in range(300):
            worker._start_call(res, time.monotonic())
        outstanding = {}
        for _ in range(256):
            data, addr = server.receive(server.auth)
            assert data[1] not in outstanding
            outstanding[data[1]] = (server.auth, data, addr)
        assert server.nothing_waiting()
        assert res.lost["stage1"] == res.unsent["stage1"] == 300 - 256  # no id free
        rnd = random.Random(1)
        rounds = 0
        while outstanding:                                  # answer in any order
            rounds += 1
            pid = rnd.choice(sorted(outstanding))
            which, data, addr = outstanding.pop(pid)
            server.answer(which, data, addr)
            worker._receive(worker.gateways[0], res)
            if rounds % 3 == 0 and rounds < 1500:           # new calls take freed ids
                worker._start_call(res, time.monotonic())
            while ready := select.select(server.socks, [], [], 0)[0]:
                for which in ready:
                    data, addr = server.receive(which)
                    assert data[1] not in outstanding, "an id reused while its packet waits"
                    outstanding[data[1]] = (which, data, addr)
            assert len(outstanding) == len(worker.gateways[0].waiting)
        assert res.completed == res.started - res.lost["stage1"] > 256
    finally:
        worker.close()


def test_an_unexpected_answer_fails_the_call_and_a_silent_server_loses_it(server, worker):
    res = loadgen.StepResult(1, 1)
    worker._start_call(res, time.monotonic())
    data, addr = server.receive(server.auth)
    server.answer(server.auth, data, addr, code=packet.AccessReject)
    worker._receive(gateway_of(worker, addr), res)
    assert res.failed["stage1"] == 1 and worker.outstanding == 0

    worker._start_call(res, time.monotonic())           # answered up to the billed Stop
    for _kind, leg in loadgen.SEQUENCE[:loadgen.BILLED_STOP]:
        which = server.auth if leg is None else server.acct
        data, addr = server.receive(which)
        server.answer(which, data, addr)
        worker._receive(gateway_of(worker, addr), res)
    data, addr = server.receive(server.acct)            # the billed Stop, not answered in time
    worker._expire(time.monotonic() + 1.0, res)
    assert res.lost["stop"] == 0                        # not late yet
    worker._expire(time.monotonic() + 3.5, res)
    assert (res.lost["stop"], res.uncertain, worker.outstanding) == (1, 1, 0)
    assert all(not gw.waiting for gw in worker.gateways)
    assert res.late["stop"] == 0 and res.unsent["stop"] == 0
    server.answer(server.acct, data, addr)              # answered after it was given up
    worker._receive(gateway_of(worker, addr), res)
    assert (res.late["stop"], res.lost["stop"], res.completed) == (1, 1, 0)
    server.answer(server.acct, data, addr)              # its repeat is nobody's
    worker._receive(gateway_of(worker, addr), res)
    assert res.late["stop"] == 1
    merged = loadgen.merge([res])
    assert merged["late"]["stop"] == 1 and merged["unsent"] == dict.fromkeys(
        loadgen.PACKET_TYPES, 0)


def answer_all(server, stop):
    while not stop.is_set():
        for which in select.select(server.socks, [], [], 0.05)[0]:
            data, addr = which.recvfrom(4096)
            server.answer(which, data, addr)


def test_a_step_drives_calls_to_completion_and_merges_as_before(server, worker):
    stop = threading.Event()
    thread = threading.Thread(target=answer_all, args=(server, stop), daemon=True)
    thread.start()
    try:
        res = worker.run_step(loadgen.Step(40, 0.5), 0, 1)
    finally:
        stop.set()
        thread.join()
    assert res.started == res.completed == res.billed_stops == 20
    assert {k: len(v) for k, v in res.latency_ms.items()} == \
        {"stage1": 20, "stage2": 20, "start": 40, "stop": 40}
    assert all(0 < v < 1000 for values in res.latency_ms.values() for v in values)
    assert 0.4 < res.window < 1.0 and res.cpu_seconds > 0
    merged = loadgen.merge([res])
    assert merged["completed"] == 20 and merged["lost_total"] == merged["failed_total"] == 0
    assert set(merged) == {
        "offered_calls_per_second", "seconds", "started", "completed", "skipped", "uncertain",
        "billed_stops", "calls_per_second", "packets_per_second", "p99_ms_all", "failed",
        "lost", "unsent", "late", "failed_total", "lost_total", "latency", "window_seconds",
        "schedule_lag_ms_max", "generator_cpu_seconds"}


def test_the_lost_are_described_by_type_with_the_late_and_the_unsent():
    merged = loadgen.merge([loadgen.StepResult(1, 1)])
    assert loadgen.describe_lost(merged) == "lost 0"
    res = loadgen.StepResult(1, 1)
    res.lost.update(stage1=5, stage2=2)
    res.late["stage2"], res.unsent["stage1"] = 1, 3
    merged = loadgen.merge([res, loadgen.StepResult(1, 1)])
    assert loadgen.describe_lost(merged) == (
        "lost 7 (stage1 5, stage2 2; of them late 1, unsent 3)")
    merged["kernel_udp_drops"] = 40
    assert loadgen.describe_lost(merged).endswith(
        "unsent 3); the kernel dropped 40 datagrams, receive buffers full")
