"""Complete prepaid calls, as a Cisco gateway sends them, for fault tests.

A call: stage 1 (card login), stage 2 (destination), Start of both legs,
Stop of the outgoing (billed) leg with the talk time, Stop of the incoming
leg. Every packet is sent until answered, each try with a new packet id and
a larger Acct-Delay-Time, as a gateway retransmits; optionally a share of
the accounting packets is sent once more after its answer.
"""

import os
import random
import threading
import time
from dataclasses import dataclass, field


class GaveUp(Exception):
    pass


@dataclass
class Call:
    card: str
    destination: str
    talk: int                      # seconds the caller talks, if allowed
    granted: int | None = None     # what stage 2 granted (None: refused)
    billed: int | None = None      # Acct-Session-Time sent in the billed Stop
    code: str | None = None        # the return code of a refusal


@dataclass
class LoadResult:
    calls: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    retransmitted: int = 0

    @property
    def made(self):
        return [c for c in self.calls if c.billed is not None]


def conf_id():
    h = os.urandom(16).hex().upper()
    return "h323-conf-id=" + " ".join(h[i:i + 8] for i in range(0, 32, 8))


def until_answered(send, deadline):
    """send(delay) until a reply comes (each try is a new packet)."""
    delay = 0
    while time.monotonic() < deadline:
        reply = send(delay)
        if reply is not None:
            return reply
        delay += 1
    raise GaveUp("no answer before the deadline")


def one_call(client, call: Call, pin: str, access_number: str, rng: random.Random,
             duplicate_share: float, result: LoadResult, deadline: float):
    conf = conf_id()
    base = [("User-Name", call.card), ("User-Password", pin),
            ("Calling-Station-Id", "15550001111"), ("h323-conf-id", conf)]

    def auth(called):
        return until_answered(lambda _d: client.access(base + [("Called-Station-Id", called)]),
                              deadline)

    login = auth(access_number)
    if not login.accepted:
        call.code = login.h323("h323-return-code")
        return
    grant = auth(call.destination)
    if not grant.accepted:
        call.code = grant.h323("h323-return-code")
        return
    call.granted = int(grant.h323("h323-credit-time"))
    talk = min(call.talk, call.granted)

    def acct(status, origin, seconds=None):
        pairs = [("Acct-Status-Type", status), ("Acct-Session-Id", conf[-8:]),
                 ("User-Name", call.card), ("Calling-Station-Id", "15550001111"),
                 ("Called-Station-Id", call.destination if origin == "originate"
                  else access_number),
                 ("h323-conf-id", conf), ("h323-call-origin", f"h323-call-origin={origin}")]
        if seconds is not None:
            pairs.append(("Acct-Session-Time", seconds))

        def send(delay):
            return client.accounting(pairs + [("Acct-Delay-Time", delay)])
        until_answered(send, deadline)
        if rng.random() < duplicate_share:
            until_answered(lambda d: send(d + 5), deadline)
            result.retransmitted += 1

    acct("Start", "answer")
    acct("Start", "originate")
    call.billed = talk
    acct("Stop", "originate", talk)
    acct("Stop", "answer", talk + 20)


def run_load(make_client, cards, pin, calls_per_card, destination, talk_range,
             duplicate_share=0.0, pause=0.0, seed=1, limit=120.0, access_number="18005550100",
             result=None):
    """One worker thread per card, each making its calls one after another
    (into `result`, if given, which another thread may watch meanwhile)."""
    result = result if result is not None else LoadResult()
    deadline = time.monotonic() + limit
    lock = threading.Lock()

    def worker(i, card):
        rng = random.Random(seed * 1000 + i)
        client = make_client()
        try:
            for _ in range(calls_per_card):
                call = Call(card, destination, rng.randint(*talk_range))
                with lock:
                    result.calls.append(call)
                one_call(client, call, pin, access_number, rng, duplicate_share, result,
                         deadline)
                time.sleep(pause)
        except Exception as exc:  # noqa: BLE001 - collected, asserted by the test
            result.errors.append(repr(exc))
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(cards)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(limit + 30)
    return result
