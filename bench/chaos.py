"""make chaos: faults under load, with the books checked after each.

Starts a service of its own (var/chaos-run: its own PostgreSQL cluster and
FreeRADIUS on free loopback ports, `kondge server start` as a user would),
then, for each fault of the matrix, offers calls at a steady rate from a
generator that retries as a gateway does (an unanswered Access-Request is
sent again, byte for byte, after 3 s, twice; an Accounting-Request up to 10
times), injects the fault, recovers, lets the load run on, stops starting
calls, lets the last ones finish and the spools drain, and checks:

- every billed Stop the server acknowledged has exactly one CDR, charged
  what the demo tariff says the talk time costs (lost, double-billed, drift);
- balances = ledger, for every card (reconciliation);
- `kondge accounting check`: every answered record found;
- the calls that failed (no answer after every retry, or a refusal), and
  the time from the fault to the first call served again.

Each call's packets and outcome go to var/chaos/<fault>.calls.jsonl; the
results to var/chaos/results.json and a table in var/chaos/results.txt
(quoted in the README, "Faults under load"). Loopback only; about 15 minutes in all.

    .venv/bin/python bench/chaos.py [--rate 60] [--only NAME,...] [--list]

Exit status 0 when every row shows 0 lost, 0 double-billed, 0 drift and a
clean accounting check; 1 otherwise.
"""

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from decimal import ROUND_UP, Decimal
from pathlib import Path

HOME = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HOME))

import psycopg2  # noqa: E402
import psycopg2.extras  # noqa: E402
from pyrad import packet  # noqa: E402
from pyrad.dictionary import Dictionary  # noqa: E402

from bench.private_service import (db, kondge, query, service_env, start_fresh,  # noqa: E402
                                   wait_drained)
from kondge_billing.store import cards  # noqa: E402
from kondge_billing import config  # noqa: E402
from kondge_billing.operations import stack  # noqa: E402
from kondge_billing.store.pins import load_key  # noqa: E402
from tests.support.cards import luhn_number  # noqa: E402
from tests.support.disk import FullDisks  # noqa: E402

VAR = HOME / "var" / "chaos-run"
OUT = HOME / "var" / "chaos"
PG_PORT = 5493
DICTIONARY = Dictionary(str(HOME / "tests" / "support" / "dictionary"))
SECRET = b"testing123"             # the demo gateway, 127.0.0.1
ACCESS = "18005550100"
DESTINATION = "15551230000"        # 0.02 a minute in the demo tariff
CARDS = 400
AUTH_TRIES, ACCT_TRIES, RETRY_AFTER = 3, 11, 3.0
SOCKETS = 48


def say(message):
    print(f"chaos: {message}", file=sys.stderr, flush=True)


def us_cost(seconds: int) -> Decimal:
    """The demo tariff's price of a call to prefix 1: 0.02 a minute, 60 s first,
    then 6 s steps, rounded up to 4 decimals."""
    if seconds <= 0:
        return Decimal("0.0000")
    billed = 60 if seconds <= 60 else 60 + -(-(seconds - 60) // 6) * 6
    return (Decimal("0.02") * billed / 60).quantize(Decimal("0.0001"), rounding=ROUND_UP)


# --- the generator: calls as a gateway makes them, retrying as it does ----------------

@dataclass
class CallLog:
    n: int
    card: str
    conf: str
    started: float
    events: list = field(default_factory=list)        # (seconds since start, what)
    outcome: str = "running"      # completed | refused | gave-up-<stage> | stop-unanswered
    granted: int | None = None
    talk: int | None = None
    stop_acked: bool = False
    served_at: float | None = None                    # stage 2 answered (monotonic)
    gave_up_at: float | None = None                   # its last try went unanswered


class Generator(asyncio.DatagramProtocol):
    """Calls at `rate` a second through the front end, on SOCKETS sockets of
    the demo gateway's address (256 packet ids each)."""

    def __init__(self, auth_port, acct_port, card_numbers, rate, poison_share=0.0, seed=7):
        self.ports = {"auth": auth_port, "acct": acct_port}
        self.cards = card_numbers
        self.rate = rate
        self.poison_share = poison_share
        self.rnd = random.Random(seed)
        self.calls: list[CallLog] = []
        self.waiting = {}             # (socket index, id) -> (future, request packet)
        self.free = []
        self.transports = []
        self.started = 0

    async def open(self, loop):
        for i in range(SOCKETS):
            transport, _ = await loop.create_datagram_endpoint(
                lambda i=i: _Socket(self, i), local_addr=("127.0.0.1", 0))
            self.transports.append(transport)
            self.free += [(i, pid) for pid in range(256)]
        self.rnd.shuffle(self.free)

    def received(self, index, data):
        if len(data) < 20:
            return
        waiting = self.waiting.get((index, data[1]))
        if waiting is None:
            return
        future, request = waiting
        try:
            reply = packet.Packet(secret=SECRET, dict=DICTIONARY, packet=data)
            if not request.VerifyReply(reply, data):
                return
        except Exception:  # noqa: BLE001 - a garbled answer is no answer
            return
        if not future.done():
            future.set_result(reply)

    async def exchange(self, pkt, kind, tries):
        """Send pkt (the same bytes each try) until answered; the reply, or None."""
        while not self.free:
            await asyncio.sleep(0.01)
        index, pid = self.free.pop()
        pkt.id = pid
        raw = pkt.RequestPacket()
        future = asyncio.get_running_loop().create_future()
        self.waiting[(index, pid)] = (future, pkt)
        try:
            for _ in range(tries):
                self.transports[index].sendto(raw, ("127.0.0.1", self.ports[kind]))
                try:
                    return await asyncio.wait_for(asyncio.shield(future), RETRY_AFTER)
                except asyncio.TimeoutError:
                    continue
            return None
        finally:
            del self.waiting[(index, pid)]
            self.free.insert(0, (index, pid))

    def _auth(self, card, called, conf):
        pkt = packet.AuthPacket(code=packet.AccessRequest, secret=SECRET, dict=DICTIONARY)
        pkt.AddAttribute("User-Name", card)
        pkt["User-Password"] = pkt.PwCrypt("1234")
        for name, value in (("Calling-Station-Id", "15550001111"), ("Called-Station-Id", called),
                            ("h323-conf-id", conf)):
            pkt.AddAttribute(name, value)
        return pkt

    def _acct(self, pairs):
        pkt = packet.AcctPacket(code=packet.AccountingRequest, secret=SECRET, dict=DICTIONARY)
        for name, value in pairs:
            pkt.AddAttribute(name, value)
        return pkt

    async def call(self, n):
        card = self.cards[n % len(self.cards)]
        words = os.urandom(16).hex().upper()
        conf_value = " ".join(words[i:i + 8] for i in range(0, 32, 8))
        conf = "h323-conf-id=" + conf_value
        log = CallLog(n, card, conf_value, time.monotonic())
        self.calls.append(log)

        def note(what):
            log.events.append((round(time.monotonic() - log.started, 3), what))
        for stage, called in (("stage1", ACCESS), ("stage2", DESTINATION)):
            reply = await self.exchange(self._auth(card, called, conf), "auth", AUTH_TRIES)
            if reply is None:
                log.outcome = f"gave-up-{stage}"
                log.gave_up_at = time.monotonic()
                note(f"{stage} unanswered")
                return
            if reply.code != packet.AccessAccept:
                log.outcome = "refused"
                note(f"{stage} refused {reply.get('h323-return-code')}")
                return
            note(f"{stage} accepted")
        log.served_at = time.monotonic()
        credit = reply.get("h323-credit-time")
        log.granted = int(str(credit[0]).split("=")[-1]) if credit else 0
        log.talk = min(self.rnd.randint(1, 90), log.granted)
        sessions = {"answer": os.urandom(4).hex(), "originate": os.urandom(4).hex()}
        poison = self.rnd.random() < self.poison_share
        for status, leg in (("Start", "answer"), ("Start", "originate"),
                            ("Stop", "originate"), ("Stop", "answer")):
            pairs = [("Acct-Status-Type", status), ("Acct-Session-Id", sessions[leg]),
                     ("User-Name", card), ("Calling-Station-Id", "15550001111"),
                     ("Called-Station-Id", DESTINATION if leg == "originate" else ACCESS),
                     ("h323-conf-id", conf), ("h323-call-origin", f"h323-call-origin={leg}")]
            if status == "Stop":
                pairs.append(("Acct-Session-Time",
                              log.talk if leg == "originate" else log.talk + 20))
                if poison and leg == "originate":
                    pairs.append(("Cisco-AVPair", b"h323-ivr-out=\xff\xfe"))
            reply = await self.exchange(self._acct(pairs), "acct", ACCT_TRIES)
            note(f"{status} {leg} {'answered' if reply is not None else 'unanswered'}")
            if status == "Stop" and leg == "originate":
                log.stop_acked = reply is not None
                if reply is None:
                    log.outcome = "stop-unanswered"
                    log.gave_up_at = time.monotonic()
                    return
        log.outcome = "completed"

    async def run_until(self, stop_at):
        """Start a call every 1/rate seconds until stop_at; the calls' tasks."""
        tasks, start = [], time.monotonic()
        while time.monotonic() < stop_at:
            delay = start + len(tasks) / self.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.started += 1
            tasks.append(asyncio.create_task(self.call(self.started)))
        return tasks


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, generator, index):
        self.generator, self.index = generator, index

    def datagram_received(self, data, addr):
        self.generator.received(self.index, data)


# --- the service ---------------------------------------------------------------------

def setup(env, s):
    start_fresh(env, VAR)
    key = load_key(s.pin_key_file)
    conn = db(s)
    numbers = []
    try:
        with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute("""INSERT INTO kondge.category (name, currency, max_calls)
                           VALUES ('chaos', 'USD', 100)""")
            for _ in range(CARDS):
                number = luhn_number()
                cards.add(cur, key, number, "1234", "100.00", "USD", category="chaos",
                          operator="chaos")
                numbers.append(number)
    finally:
        conn.close()
    return numbers


# --- the faults -------------------------------------------------------------------------

def _postgres_pids(s):
    postmaster = int((s.pg_data / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True,
                               text=True).stdout.split()
    return [postmaster] + [int(p) for p in children]


def _kill(pid):
    if pid:
        os.kill(pid, signal.SIGKILL)


def _wait_db(s, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            psycopg2.connect(s.dsn, connect_timeout=1).close()
            return
        except psycopg2.OperationalError:
            time.sleep(0.2)


class Faults:
    """Each: inject(env, s) -> the recovery to run later (or None), and how long
    the fault lasts before it (seconds)."""

    def __init__(self, env, s):
        self.env, self.s = env, s
        self.full = FullDisks()

    def none(self):
        return 0, None

    def kill_one_worker(self):
        _kill(stack.radius_pids(self.s).get("worker-1"))
        return 0, None

    def kill_all_workers(self):
        for name, pid in stack.radius_pids(self.s).items():
            if name.startswith("worker-"):
                _kill(pid)
        return 0, None

    def kill_front_end(self):
        _kill(stack.radius_pids(self.s).get("freeradius"))
        return 0, None

    def kill_supervisor(self):
        _kill(stack.supervisor_pid(self.s))
        _kill(stack.radius_pids(self.s).get("worker-2"))     # and a worker, unsupervised
        return 5, lambda: kondge(self.env, "server", "start")

    def postgres_fast_stop_20s(self):
        stack.db_stop(self.s)
        return 20, lambda: stack.db_start(self.s)

    def postgres_immediate_stop_20s(self):
        stack.db_hold_flag(self.s).touch()
        subprocess.run(["runuser", "-u", "postgres", "--", str(stack.pg_bin(self.s) / "pg_ctl"),
                        "-D", str(self.s.pg_data), "-m", "immediate", "stop"],
                       capture_output=True)
        return 20, lambda: stack.db_start(self.s)

    def _sigstop(self, seconds):
        pids = _postgres_pids(self.s)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)

        def resume():
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        return seconds, resume

    def postgres_sigstop_15s(self):
        return self._sigstop(15)

    def postgres_sigstop_60s(self):
        return self._sigstop(60)

    def spool_disk_full(self):
        for directory in stack.spool_dirs(self.s):
            if directory.parent.name.startswith("worker-"):
                self.full.fill(directory)
        stack.db_stop(self.s)

        def recover():
            self.full.free()
            stack.db_start(self.s)
        return 15, recover

    def restart_under_load(self):
        kondge(self.env, "server", "stop")
        r = kondge(self.env, "server", "start")
        if r.returncode != 0:
            say(f"restart failed: {r.stdout}{r.stderr}")
        return 0, None

    def poison_records(self):
        return 0, None                    # the generator mixes them in (Run.poison)


MATRIX = ["none", "kill_one_worker", "kill_all_workers", "kill_front_end", "kill_supervisor",
          "postgres_fast_stop_20s", "postgres_immediate_stop_20s", "postgres_sigstop_15s",
          "postgres_sigstop_60s", "spool_disk_full", "restart_under_load", "poison_records"]


# --- one row ---------------------------------------------------------------------------

def books(s, calls):
    confs = [c.conf for c in calls]
    rows = query(s, """SELECT call_id, count(*) AS cdrs, sum(charge) AS charge,
                              array_agg(flags) AS flags
                         FROM kondge.cdr WHERE call_id = ANY(%s) GROUP BY call_id""", (confs,))
    by_conf = {r["call_id"]: r for r in rows}
    acked = [c for c in calls if c.stop_acked]
    lost = [c.conf for c in acked if c.conf not in by_conf]
    double = [c for c, r in by_conf.items() if r["cdrs"] > 1]
    expected = sum((us_cost(c.talk) for c in acked), Decimal(0))
    charged = sum((by_conf[c.conf]["charge"] for c in acked if c.conf in by_conf), Decimal(0))
    wrong = [c.conf for c in acked if c.conf in by_conf
             and by_conf[c.conf]["charge"] != us_cost(c.talk)]
    mismatched = query(s, "SELECT count(*) AS n FROM reports.reconciliation")[0]["n"]
    return {"acked_stops": len(acked), "cdrs": sum(r["cdrs"] for r in rows),
            "lost": len(lost), "double_billed": len(double), "wrongly_charged": len(wrong),
            "drift": str(expected - charged), "balance_mismatches": mismatched,
            "lost_calls": lost[:20], "wrong_calls": wrong[:20]}


async def run_row(name, env, s, numbers, rate, warmup=8.0, after=15.0):
    gen = Generator(s.auth_port, s.acct_port, numbers, rate,
                    poison_share=0.05 if name == "poison_records" else 0.0)
    loop = asyncio.get_running_loop()
    await gen.open(loop)
    faults = Faults(env, s)
    t0 = time.monotonic()
    tasks = await gen.run_until(t0 + warmup)
    fault_at = time.monotonic()
    hold, recover = await loop.run_in_executor(None, getattr(faults, name))
    tasks += await gen.run_until(time.monotonic() + hold)
    if recover is not None:
        await loop.run_in_executor(None, recover)
    recovered_at = time.monotonic()
    tasks += await gen.run_until(time.monotonic() + after)
    await asyncio.gather(*tasks)
    for t in gen.transports:
        t.close()
    if name.startswith("postgres") or name == "spool_disk_full":
        await loop.run_in_executor(None, _wait_db, s)
    drained = await loop.run_in_executor(None, wait_drained, env)
    # how long no call was served (a stage 2 answered) from the fault on, and
    # how soon after the recovery one was again
    served = sorted(c.served_at for c in gen.calls if c.served_at and c.served_at >= fault_at)
    marks = [fault_at] + served
    longest_gap = max((b - a for a, b in zip(marks, marks[1:])), default=None)
    after = [t for t in served if t >= recovered_at]
    first_good = round(after[0] - recovered_at, 1) if after else None
    # calls that were still retrying after the recovery (their last try sent
    # half a second or more after it) and yet failed
    failed_late = [c.conf for c in gen.calls if c.gave_up_at is not None
                   and c.gave_up_at - RETRY_AFTER > recovered_at + 0.5]
    outcomes = {}
    for c in gen.calls:
        outcomes[c.outcome] = outcomes.get(c.outcome, 0) + 1
    row = {"fault": name, "calls": len(gen.calls), "completed": outcomes.get("completed", 0),
           "failed": len(gen.calls) - outcomes.get("completed", 0), "outcomes": outcomes,
           "fault_seconds": round(recovered_at - fault_at, 1),
           "unserved_seconds": round(longest_gap, 1) if longest_gap is not None else None,
           "first_good_call_after_recovery": first_good,
           "failed_after_recovery": len(failed_late), "failed_after_recovery_calls":
           failed_late[:20], "spools_drained": drained}
    row.update(await loop.run_in_executor(None, books, s, gen.calls))
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / f"{name}.calls.jsonl", "w") as f:
        for c in gen.calls:
            f.write(json.dumps(asdict(c)) + "\n")
    return row


def table(rows) -> str:
    head = ("fault", "held (s)", "calls", "completed", "failed", "failed after recovery",
            "acked Stops", "CDRs", "lost", "double-billed", "drift", "no call served for (s)",
            "first good call after recovery (s)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(str(v) for v in (
            r["fault"].replace("_", " "), r["fault_seconds"], r["calls"], r["completed"],
            r["failed"], r["failed_after_recovery"], r["acked_stops"], r["cdrs"], r["lost"],
            r["double_billed"], r["drift"], r["unserved_seconds"],
            r["first_good_call_after_recovery"])) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--rate", type=float, default=60.0, help="calls offered a second")
    parser.add_argument("--only", help="these faults only, comma-separated (see --list)")
    parser.add_argument("--list", action="store_true", help="list the faults and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(MATRIX))
        return 0
    names = args.only.split(",") if args.only else MATRIX
    unknown = [n for n in names if n not in MATRIX]
    if unknown:
        parser.error(f"no such fault: {', '.join(unknown)} (see --list)")
    env = service_env(VAR, PG_PORT, KONDGE_SWEEP_SECONDS="30")
    s = config.load(env)
    rows = []
    try:
        say(f"setting up the service in {VAR}")
        numbers = setup(env, s)
        for i, name in enumerate(names, 1):
            say(f"[{i}/{len(names)}] {name.replace('_', ' ')} at {args.rate:g} calls/s")
            row = asyncio.run(run_row(name, env, s, numbers, args.rate))
            rows.append(row)
            say(f"    {row['completed']} of {row['calls']} calls completed; lost {row['lost']}, "
                f"double-billed {row['double_billed']}, drift {row['drift']}")
        check = kondge(env, "--json", "accounting", "check")
        report = json.loads(check.stdout) if check.stdout.strip().startswith("{") else {}
    finally:
        kondge(env, "server", "stop")
    OUT.mkdir(parents=True, exist_ok=True)
    result = {"rate": args.rate, "rows": rows,
              "accounting_check": {k: v for k, v in report.items() if k != "missing"},
              "missing": report.get("missing", [])[:50],
              "when": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    (OUT / "results.json").write_text(json.dumps(result, indent=2))
    text = table(rows) + (f"\nkondge accounting check: {result['accounting_check']}, "
                          f"missing {len(report.get('missing', []))}\n")
    (OUT / "results.txt").write_text(text)
    print(text)
    clean = all(r["lost"] == 0 and r["double_billed"] == 0 and r["drift"] in ("0", "0.0000")
                and r["wrongly_charged"] == 0 and r["balance_mismatches"] == 0
                and r["failed_after_recovery"] == 0 for r in rows)
    return 0 if clean and not report.get("missing") and report else 1


if __name__ == "__main__":
    sys.exit(main())
