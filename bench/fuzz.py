"""make fuzz: random and mutated RADIUS packets through the real service.

Starts a service of its own (var/fuzz-run: its own PostgreSQL cluster on
port 5492 and FreeRADIUS, front end and workers, on free loopback ports,
`kondge server start` as a user would), adds a gateway of each dialect
(Cisco 127.0.0.1, Quintum 127.0.0.2, generic 127.0.0.3, Cisco requiring
Message-Authenticator 127.0.0.4), cards and bound callers of its own, then
sends batches of packets (bench/fuzz_packets.py): real calls of each
dialect, most of them mutated (values of every length, binary and
unicode, every Cisco, Quintum and Kondge vendor attribute, duplicated,
missing and reordered attributes, wrong authenticators and secrets,
truncated and over-long packets, lengths that lie, noise). Loopback only;
bounded by --duration.

What the fuzzer expects (kept simple, to follow the server's edge as it
changes):

  silence  A datagram radius_wire.silent_reasons says FreeRADIUS drops gets
           no answer at all: from an address that is no gateway; an
           Accounting-Request whose authenticator does not hold with the
           gateway's secret; a Message-Authenticator that does not hold, or
           missing where the gateway requires one (and on Status-Server);
           a code the port does not serve; a length field below 20, above
           4096 or beyond the datagram; attributes that do not fill the
           packet exactly (a length byte below 2, past the end, type 0);
           more than 200 attributes; EAP-Message without
           Message-Authenticator.
  replies  Anything else may be answered or not (no answer is never a
           finding: overload control and a full queue drop requests by
           design). An answer must come from the port asked, carry the
           request's id, a Response Authenticator (and any
           Message-Authenticator) that holds with the gateway's secret, and
           fit the request: Access-Accept or Access-Reject to an
           Access-Request, Accounting-Response to an Accounting-Request,
           Access-Accept or Accounting-Response to Status-Server; no more
           answers than copies sent.
  accept   An Access-Accept to an Access-Request only when the packet, read
           with the gateway's secret as the server reads it (a value ends at
           its first NUL; surrounding white space as Python's str.strip()
           sees it), holds a User-Name that is a valid card of the fuzzer's
           and a User-Password that is its PIN; or a User-Name equal to a
           Calling-Station-Id that the gateway's numbering makes a caller
           number bound to a valid card, with no or an empty password.
           It carries positive credit: h323-credit-amount or
           h323-credit-time (Quintum-h323-... from a Quintum gateway) above
           0 with h323-return-code=0, or, from a generic gateway,
           Session-Timeout above 0 or "Balance" above 0 in Reply-Message.
  reject   An Access-Reject carries no credit amount, credit time or
           Session-Timeout.
  batch    After each batch: the supervisor, the front end, every worker
           and PostgreSQL run with the pids they had (one the supervisor
           restarted is a finding all the same, named so); a valid login
           of a card no generated packet names is accepted within 10 s;
           the reconciliation report and v_balance_mismatch are empty; no
           prepaid card is below 0, no postpaid one below minus its credit
           limit; `kondge accounting check` misses nothing and journals at
           least as many records as were answered; no record was parked in
           kondge.unprocessed_record but one without a known
           Acct-Status-Type (kept there for the operator by design); the FreeRADIUS logs show no hook
           exception and no unanswered accounting.

Results go to var/fuzz/: report.json (counts per mutation kind and
template, answers per code, checks per batch, findings), report.txt (the
same, short) and findings.jsonl (one finding a line, with the packet's
bytes in hex). Everything sent is a function of --seed: `--dump-batch N`
writes batch N's packets without sending, `--replay findings.jsonl` sends
findings' packets again to a fresh service.

    .venv/bin/python bench/fuzz.py [--packets 100000] [--rate 1000] [--duration 300]
                                   [--seed 1] [--batch 10000]

Exit status: 0 no finding, 1 findings (see var/fuzz/report.txt), 2 wrong
usage, 3 the service did not start.
"""

import argparse
import json
import os
import re
import select
import socket
import sys
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path

HOME = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HOME))

from bench import fuzz_packets as fp  # noqa: E402
from bench import radius_wire as wire  # noqa: E402
from bench.private_service import kondge, service_env, start_fresh  # noqa: E402
from kondge_billing.store import cards  # noqa: E402
from kondge_billing import config  # noqa: E402
from kondge_billing.operations import stack  # noqa: E402
from kondge_billing.commands.common import EXIT_REFUSED, EXIT_UNAVAILABLE  # noqa: E402
from kondge_billing.store.db import Database  # noqa: E402
from kondge_billing.identifiers import luhn_valid  # noqa: E402
from kondge_billing.rating.numbers import NumberFormat, normalise  # noqa: E402
from kondge_billing.store.pins import load_key  # noqa: E402

VAR = HOME / "var" / "fuzz-run"
OUT = HOME / "var" / "fuzz"
PG_PORT = 5492
UNKNOWN_ADDRESS = "127.0.0.99"
GATEWAYS = (("quintum-1", "127.0.0.2", "q-secret", "quintum", "optional"),
            ("lucent-1", "127.0.0.3", "l-secret", "generic", "optional"),
            ("cisco-ma", "127.0.0.4", "ma-secret", "cisco", "required"))
#: the login probe's own gateway: no generated packet goes through it, so the
#: PIN limits that the fuzzer's wrong PINs set off on the others (a gateway
#: or caller number locked, as designed) never stop the probe
PROBE_GATEWAY = ("fuzz-probe", "127.0.5.9", "probe-secret", "cisco", "optional")
ACCESS_NUMBERS = ("18005550100", "4420799990000")           # the demo set's
DESTINATIONS = ("15551230000", "447911123456", "442071234567", "4470123", "999123", "1")
VALID_CARDS, REFUSED_KINDS, CALLERS = 48, ("zero", "expired", "suspended", "cancelled"), 24
MAX_CREDIT_TIME = 86400
FINDINGS_KEPT = 50                  # of each check, with their bytes (all are counted)
LOG_PATTERNS = ("unexpected error in", "ACCOUNTING NOT ANSWERED", "Traceback",
                "CAUGHT SIGNAL", "Segmentation", "Assertion", "rad_assert")


def say(message):
    print(f"fuzz: {message}", file=sys.stderr, flush=True)


# --- the world: gateways, cards and callers the fuzzer knows ---------------------------

def world_gateways(db) -> tuple:
    rows = db.run(lambda cur: (cur.execute(
        """SELECT name, host(address) AS address, secret, dialect, message_authenticator
             FROM kondge.gateway WHERE removed_at IS NULL ORDER BY name"""), cur.fetchall())[1])
    return tuple(fp.Gateway(r["name"], r["address"], r["secret"].encode(), r["dialect"],
                            r["message_authenticator"] == "required") for r in rows
                 if r["address"].startswith("127.") and r["name"] != PROBE_GATEWAY[0])


def probe_gateway(service) -> fp.Gateway:
    """The login probe's gateway, added (and served) if the service has not got it."""
    name, address, secret, dialect, ma = PROBE_GATEWAY
    listed = service.kondge("gateways", "list", "--json")
    if name not in {g["name"] for g in json.loads(listed.stdout or "[]")}:
        added = service.kondge("gateways", "add", "--name", name, "--address", address,
                               "--secret", secret, "--dialect", dialect,
                               "--message-authenticator", ma, "--operator", "fuzz")
        if added.returncode != 0:
            raise RuntimeError(f"the probe's gateway was not added: {added.stdout}{added.stderr}")
    return fp.Gateway(name, address, secret.encode(), dialect, False)


def card_number(seed: int, n: int) -> str:
    """The fuzzer's card numbers: 14 digits, check digit valid, from the seed."""
    body = f"8{seed % 10**6:06d}{n:06d}"
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


def world_of(seed: int, gateways: tuple) -> tuple[fp.World, tuple]:
    """The cards and callers of a seed, with `gateways`; and the login probe's
    (card, PIN), which no generated packet names."""
    valid = {card_number(seed, n): f"{1000 + n:04d}" for n in range(VALID_CARDS)}
    refused = {card_number(seed, 900 + i): "4321" for i in range(len(REFUSED_KINDS))}
    callers = {f"7{seed % 10**4:04d}{n:06d}": number
               for n, number in zip(range(CALLERS), sorted(valid))}
    world = fp.World(gateways, UNKNOWN_ADDRESS, valid, refused, callers, ACCESS_NUMBERS,
                     DESTINATIONS)
    return world, (card_number(seed, 999), "2468")


def make_world(db, pin_key: bytes, seed: int) -> tuple[fp.World, tuple]:
    """world_of(seed) with the gateways the database has, its categories, cards
    and callers made (once: a second run of the same seed finds them)."""
    world, probe = world_of(seed, world_gateways(db))
    prepaid, postpaid = f"fuzz-{seed}", f"fuzz-post-{seed}"

    def work(cur):
        cur.execute("SELECT 1 FROM kondge.category WHERE name = %s", (prepaid,))
        if cur.fetchone():
            return
        for name, billing, limit in ((prepaid, "prepaid", 0), (postpaid, "postpaid", 50)):
            cur.execute("""INSERT INTO kondge.category (name, currency, max_calls, billing,
                                                        credit_limit, max_call_seconds)
                           VALUES (%s, 'USD', 100000, %s, %s, 600)""", (name, billing, limit))
        for i, (number, pin) in enumerate(sorted(world.cards.items()) + [probe]):
            cards.add(cur, pin_key, number, pin, "1000.00", "USD",
                      category=postpaid if i % 8 == 7 else prepaid, operator="fuzz")
        for kind, (number, pin) in zip(REFUSED_KINDS, sorted(world.refused_cards.items())):
            cards.add(cur, pin_key, number, pin, "0.00" if kind == "zero" else "1000.00", "USD",
                      category=prepaid, operator="fuzz",
                      expires_at=datetime.now(timezone.utc) - timedelta(days=1)
                      if kind == "expired" else None)
            if kind in ("suspended", "cancelled"):
                cur.execute("UPDATE kondge.card SET status = %s WHERE number = %s", (kind, number))
        for caller, number in world.callers.items():
            cur.execute("""INSERT INTO kondge.caller (number, card_id)
                           SELECT %s, id FROM kondge.card WHERE number = %s""", (caller, number))
    db.run(work)
    return world, probe


# --- judging an answer ---------------------------------------------------------------

def text(raw: bytes) -> str | None:
    """A string value as the hook gets it: up to its first NUL, UTF-8 (None:
    rlm_python3 could not hand it over at all)."""
    try:
        return raw.split(b"\0", 1)[0].decode("utf-8")
    except UnicodeDecodeError:
        return None


def request_values(probe: fp.Probe, dictionary) -> dict:
    length = int.from_bytes(probe.data[2:4], "big")
    return wire.named_values(wire.split_attributes(probe.data[wire.HEADER:length]), dictionary)


def legitimate_login(probe: fp.Probe, world: fp.World, dictionary) -> bool:
    """A valid card with its PIN, or a bound caller's own login, in the packet."""
    values = request_values(probe, dictionary)
    secret = world.gateway_at(probe.source).secret
    authenticator = probe.data[4:wire.HEADER]
    users = [u.strip() for u in map(text, values.get("User-Name", [])) if u is not None]
    pins = [text(wire.unhide_password(v, secret, authenticator))
            for v in values.get("User-Password", [])]
    if any(world.cards.get(u) is not None and world.cards[u] in pins for u in users):
        return True
    callers = [c for c in map(text, values.get("Calling-Station-Id", [])) if c is not None]
    bound = any(c.strip() in users and normalise(c, NumberFormat()) in world.callers
                for c in callers)
    return bound and all(p == "" for p in pins)


def reply_text(values: dict, name: str) -> str | None:
    found = values.get(name)
    return found[0].decode("utf-8", "replace") if found else None


def credit_problem(values: dict, dialect: str) -> str | None:
    """What is wrong with an Access-Accept's credit, if anything."""
    if dialect == "generic":
        timeout = values.get("Session-Timeout")
        message = reply_text(values, "Reply-Message") or ""
        seconds = int.from_bytes(timeout[0], "big") if timeout else None
        if seconds is not None and not 0 < seconds <= MAX_CREDIT_TIME:
            return f"Session-Timeout {seconds}"
        available = re.search(r"(?:^Balance|credit remaining) (-?[0-9.]+) ", message)
        if seconds is None and not (available and _positive([available[1]])):
            return f"Reply-Message {message!r}"
        return None
    prefix = "Quintum-" if dialect == "quintum" else ""
    code = reply_text(values, prefix + "h323-return-code")
    if code != "h323-return-code=0":
        return f"return code {code!r}"
    amount = reply_text(values, prefix + "h323-credit-amount")
    seconds = reply_text(values, prefix + "h323-credit-time")
    if amount is None and seconds is None:
        return "no credit amount or time"
    if amount is not None and not _positive(amount.split("=")[1:2]):
        return f"credit amount {amount!r}"
    if seconds is not None and not (seconds.split("=")[-1].isdigit()
                                    and 0 < int(seconds.split("=")[-1]) <= MAX_CREDIT_TIME):
        return f"credit time {seconds!r}"
    return None


def _positive(words: list) -> bool:
    try:
        return bool(words) and Decimal(words[0]) > 0
    except InvalidOperation:
        return False


CREDIT_NAMES = ("h323-credit-amount", "h323-credit-time", "Quintum-h323-credit-amount",
                "Quintum-h323-credit-time", "Session-Timeout")


def judge(probe: fp.Probe, reply: bytes, world: fp.World, dictionary) -> tuple[str, str] | None:
    """(check, detail) that an answer breaks, or None."""
    if probe.silent:
        return "answered-although-" + probe.silent[0], ", ".join(probe.silent)
    gateway = world.gateway_at(probe.source)
    problem = wire.reply_problem(reply, probe.data, gateway.secret)
    if problem:
        return problem, ""
    code = probe.data[0]
    if reply[0] not in wire.ANSWER_CODES[code]:
        return "answer-code", f"{wire.CODE_NAMES.get(reply[0], reply[0])} to " \
                              f"{wire.CODE_NAMES[code]}"
    if code != wire.ACCESS_REQUEST:
        return None
    values = wire.named_values(wire.split_attributes(reply[wire.HEADER:]), dictionary)
    if reply[0] == wire.ACCESS_REJECT:
        credit = [n for n in CREDIT_NAMES if n in values]
        return ("reject-with-credit", ", ".join(credit)) if credit else None
    if not legitimate_login(probe, world, dictionary):
        return "accept-not-legitimate", ""
    problem = credit_problem(values, gateway.dialect)
    return ("accept-credit", problem) if problem else None


# --- sending -------------------------------------------------------------------------

@dataclass
class Sent:
    probe: fp.Probe
    at: float
    answers: list = field(default_factory=list)
    closed: bool = False            # given up on (its answers still count)


class Sockets:
    """fp.SOCKETS UDP sockets bound to each source address."""

    def __init__(self, addresses, ports: dict):
        self.ports = ports
        self.by_slot, self.by_fd = {}, {}
        self.poller = select.epoll()
        for address in addresses:
            for i in range(fp.SOCKETS):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
                sock.bind((address, 0))
                sock.setblocking(False)
                self.by_slot[(address, i)] = sock
                self.by_fd[sock.fileno()] = (address, i, sock)
                self.poller.register(sock.fileno(), select.EPOLLIN)

    def send(self, probe: fp.Probe) -> int:
        """Send a probe (its copies); how many the kernel would not send."""
        sock, failed = self.by_slot[(probe.source, probe.socket)], 0
        for _ in range(probe.repeat):
            try:
                sock.sendto(probe.data, ("127.0.0.1", self.ports[probe.port]))
            except OSError:
                failed += 1         # a full send buffer
        return failed

    def receive(self, wait: float):
        """[(source, socket index, datagram, port it came from)] that arrived
        within `wait` seconds."""
        got = []
        for fd, _ in self.poller.poll(max(wait, 0.0)):
            address, i, sock = self.by_fd[fd]
            while True:
                try:
                    data, sender = sock.recvfrom(8192)
                except BlockingIOError:
                    break
                got.append((address, i, data, sender[1]))
        return got

    def close(self):
        self.poller.close()
        for sock in self.by_slot.values():
            sock.close()


@dataclass
class Tally:
    """Counts for the report."""

    sent: int = 0
    kinds: Counter = field(default_factory=Counter)
    templates: Counter = field(default_factory=Counter)
    codes: Counter = field(default_factory=Counter)                       # code -> probes
    answers: dict = field(default_factory=lambda: defaultdict(Counter))   # kind -> code -> n
    unanswered_unmutated: Counter = field(default_factory=Counter)        # template -> n
    unanswered_samples: list = field(default_factory=list)                # the first of them
    expected_silence: Counter = field(default_factory=Counter)            # reason -> n
    stray_answers: int = 0
    late_answers: int = 0           # after --timeout (judged all the same)
    send_errors: int = 0            # datagrams the kernel would not send
    answered_accounting: int = 0
    findings: Counter = field(default_factory=Counter)
    kept: list = field(default_factory=list)

    def finding(self, check: str, detail: str = "", probe: fp.Probe | None = None,
                reply: bytes | None = None, batch: int | None = None):
        self.findings[check] += 1
        if self.findings[check] > FINDINGS_KEPT:
            return
        entry = {"check": check, "detail": detail}
        if probe is not None:
            entry.update(probe.to_json())
        if reply is not None:
            entry["reply_hex"] = reply.hex()
        if batch is not None:
            entry.setdefault("batch", batch)
        self.kept.append(entry)


class Fuzzer:
    def __init__(self, service, world: fp.World, dictionary, rate: float, timeout: float):
        self.service, self.world, self.dictionary = service, world, dictionary
        self.rate, self.timeout = rate, timeout
        self.tally = Tally()
        s = service.settings
        self.sockets = Sockets([g.address for g in world.gateways] + [world.unknown_address],
                               {"auth": s.auth_port, "acct": s.acct_port})
        self.slots: dict = {}

    def close(self):
        self.sockets.close()

    def send_batch(self, probes: list) -> float:
        """Send at self.rate, judge every answer, wait for the last; the seconds taken."""
        started = time.monotonic()
        pending: deque = deque()
        i = 0
        while True:
            now = time.monotonic()
            while i < len(probes) and started + i / self.rate <= now:
                pending.append(self._send(probes[i], now))
                i += 1
            while pending and (pending[0].answers or pending[0].at + self.timeout < now):
                self._close(pending.popleft())
            if i >= len(probes) and not pending:
                return time.monotonic() - started
            due = started + i / self.rate if i < len(probes) else now + 0.05
            for source, index, data, port in self.sockets.receive(min(due - now, 0.05)):
                self._answer(source, index, data, port)

    def _send(self, probe: fp.Probe, now: float) -> Sent:
        t = self.tally
        t.sent += probe.repeat
        t.kinds.update(probe.kinds)
        t.templates[probe.template] += 1
        if probe.silent:
            t.expected_silence[probe.silent[0]] += 1
        sent = Sent(probe, now)
        if len(probe.data) > 1:
            self.slots[(probe.source, probe.socket, probe.data[1])] = sent
        t.send_errors += self.sockets.send(probe)
        return sent

    def _close(self, sent: Sent):
        sent.closed = True
        if not sent.answers:
            self.tally.codes["no answer"] += 1
            for kind in sent.probe.kinds:
                self.tally.answers[kind]["no answer"] += 1
            if sent.probe.kinds == ("none",) and not sent.probe.silent:
                self.tally.unanswered_unmutated[sent.probe.template] += 1
                if len(self.tally.unanswered_samples) < 20:
                    self.tally.unanswered_samples.append(sent.probe.to_json())

    def _answer(self, source: str, index: int, data: bytes, port: int):
        sent = self.slots.get((source, index, data[1] if len(data) > 1 else None))
        if sent is None:
            self.tally.stray_answers += 1
            return
        probe = sent.probe
        sent.answers.append(data)
        if sent.closed:
            self.tally.late_answers += 1
        if len(sent.answers) == 1:
            name = wire.CODE_NAMES.get(data[0], str(data[0]))
            self.tally.codes[name] += 1
            for kind in probe.kinds:
                self.tally.answers[kind][name] += 1
            if data[0] == wire.ACCOUNTING_RESPONSE and probe.data[0] == wire.ACCOUNTING_REQUEST:
                self.tally.answered_accounting += 1
        if len(sent.answers) > probe.repeat:
            self.tally.finding("answered-more-than-sent", f"{len(sent.answers)} answers",
                               probe, data)
            return
        if port != self.sockets.ports[probe.port]:
            self.tally.finding("answer-from-another-port", f"port {port}", probe, data)
            return
        try:
            problem = judge(probe, data, self.world, self.dictionary)
        except Exception as exc:  # noqa: BLE001 - an answer the judge cannot read
            problem = ("reply-unreadable", repr(exc))
        if problem:
            self.tally.finding(problem[0], problem[1], probe, data)


# --- the checks after each batch -------------------------------------------------------

def process_pids(s) -> dict:
    """{part: pid} of what runs: supervisor, front end, workers, PostgreSQL."""
    pids = {"supervisor": stack.supervisor_pid(s)}
    pids.update({("front end" if name == "freeradius" else name): pid
                 for name, pid in stack.radius_pids(s).items()})
    try:
        pids["postgres"] = int((s.pg_data / "postmaster.pid").read_text().split()[0])
        os.kill(pids["postgres"], 0)
    except (OSError, ValueError, IndexError):
        pids["postgres"] = None
    return pids


def compare_pids(before: dict, now: dict) -> list[str]:
    """Parts that died: 'restarted by the supervisor' (another pid now) or 'not running'."""
    changed = []
    for part, pid in sorted(before.items()):
        if now.get(part) == pid:
            continue
        changed.append(f"{part} pid {pid} -> {now.get(part)}: "
                       + ("restarted by the supervisor" if now.get(part) else "not running"))
    return changed


BOOKS = """
SELECT (SELECT count(*) FROM reports.reconciliation) AS reconciliation,
       (SELECT count(*) FROM kondge.v_balance_mismatch) AS mismatched,
       (SELECT coalesce(json_agg(json_build_object('card', c.number, 'balance', c.balance,
                                                   'billing', g.billing)), '[]')
          FROM kondge.card c JOIN kondge.category g ON g.name = c.category
         WHERE c.balance < CASE WHEN g.billing = 'postpaid' THEN -g.credit_limit ELSE 0 END
       ) AS below,
       (SELECT coalesce(max(id), 0) FROM kondge.unprocessed_record) AS last_parked
"""


def books(db) -> dict:
    return db.run(lambda cur: (cur.execute(BOOKS), cur.fetchone())[1])


#: what RFC 2866 and its extensions call the records the call path stores
KNOWN_STATUS = ("Start", "Stop", "Interim-Update", "Alive", "Accounting-On", "Accounting-Off",
                "1", "2", "3", "7", "8")


def without_a_status(pairs: list) -> bool:
    """A record kept for the operator by design: its first Acct-Status-Type
    (up to a NUL, white space aside) is none of the known ones, or it has none."""
    sent = [value for name, value in pairs if name == "Acct-Status-Type"]
    return not sent or sent[0].split("\0")[0].strip() not in KNOWN_STATUS


def parked_since(db, last_id: int) -> list:
    return db.run(lambda cur: (cur.execute(
        "SELECT id, pairs, error FROM kondge.unprocessed_record WHERE id > %s ORDER BY id",
        (last_id,)), cur.fetchall())[1])


class Logs:
    """What the FreeRADIUS logs gained since the last look."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.offsets = {p: p.stat().st_size for p in self.files()}

    def files(self) -> list[Path]:
        return sorted(self.log_dir.glob("radius*.log"))

    def new_errors(self) -> list[str]:
        found = []
        for path in self.files():
            with open(path, "rb") as f:
                f.seek(self.offsets.get(path, 0))
                new = f.read()
            self.offsets[path] = self.offsets.get(path, 0) + len(new)
            lines = new.decode("utf-8", "replace").splitlines()
            for i, line in enumerate(lines):
                if any(p in line for p in LOG_PATTERNS):
                    found.append(f"{path.name}: " + "\n".join(lines[i:i + 12]))
        return found


def login_probe(world: fp.World, dictionary, ports: dict, card: tuple, gateway: fp.Gateway,
                deadline: float = 10.0) -> bool:
    """A valid stage 1 of a card no mutated packet names, through a gateway no
    generated packet uses: accepted within `deadline` s."""
    draft = fp.Draft(wire.ACCESS_REQUEST, [["User-Name", card[0]], ["User-Password", card[1]],
                                           ["Calling-Station-Id", "15550009999"],
                                           ["Called-Station-Id", world.access_numbers[0]]],
                     gateway, "auth", gateway.address, gateway.secret, gateway.secret)
    end = time.monotonic() + deadline
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((gateway.address, 0))
        sock.settimeout(1.0)
        while time.monotonic() < end:
            data = fp.encode(draft, dictionary, 7, os.urandom(16))
            sock.sendto(data, ("127.0.0.1", ports["auth"]))
            try:
                reply = sock.recv(4096)
            except socket.timeout:
                continue
            if reply[0] == wire.ACCESS_ACCEPT and not wire.reply_problem(
                    reply, data, gateway.secret):
                return True
            time.sleep(0.5)
    return False


class BatchChecks:
    """The state the checks compare against, taken before the first batch."""

    def __init__(self, service, fuzzer: Fuzzer, probe_card: tuple):
        self.service, self.fuzzer, self.probe_card = service, fuzzer, probe_card
        self.probe_gateway = probe_gateway(service)
        s = service.settings
        self.pids = process_pids(s)
        self.last_parked = books(service.db)["last_parked"]
        self.logs = Logs(s.log_dir)
        # what `kondge accounting check` missed before (another test's doing)
        self.missing_before = {_identity(m) for m in self._check().get("missing", [])}

    def run(self, batch: int, probes: list) -> dict:
        t, s, db = self.fuzzer.tally, self.service.settings, self.service.db
        result = {"batch": batch}
        result["processes"] = compare_pids(self.pids, process_pids(s))
        for change in result["processes"]:
            t.finding("process-died", change, batch=batch)
        self.pids = process_pids(s)
        result["login_probe"] = login_probe(self.fuzzer.world, self.fuzzer.dictionary,
                                            self.fuzzer.sockets.ports, self.probe_card,
                                            self.probe_gateway)
        if not result["login_probe"]:
            t.finding("service-not-serving", "a valid login was not accepted within 10 s",
                      batch=batch)
        result.update(self._books(batch, probes))
        result.update(self._accounting(batch))
        result["log_errors"] = self.logs.new_errors()
        for excerpt in result["log_errors"]:
            t.finding("log-error", excerpt, batch=batch)
        return result

    def _books(self, batch: int, probes: list) -> dict:
        t, b = self.fuzzer.tally, books(self.service.db)
        if b["reconciliation"] or b["mismatched"]:
            t.finding("books-unbalanced", f"reconciliation {b['reconciliation']} rows, "
                                          f"v_balance_mismatch {b['mismatched']}", batch=batch)
        for card in b["below"]:
            t.finding("card-below-its-limit", json.dumps(card, default=str), batch=batch)
        parked = parked_since(self.service.db, self.last_parked)
        set_aside = [row for row in parked if without_a_status(row["pairs"])]
        for row in parked:
            if row in set_aside:
                continue
            t.finding("record-parked", json.dumps({
                "pairs": row["pairs"], "error": row["error"][-600:],
                "packets_of_its_session": self._session_packets(row["pairs"], probes)}),
                batch=batch)
        self.last_parked = max([self.last_parked] + [r["id"] for r in parked])
        return {"reconciliation": b["reconciliation"], "mismatched": b["mismatched"],
                "cards_below": len(b["below"]), "parked": len(parked) - len(set_aside),
                "set_aside": len(set_aside)}

    def _session_packets(self, pairs: list, probes: list) -> list:
        """The batch's packets from the record's gateway with its Acct-Session-Id
        (earlier batches may hold more: --dump-batch)."""
        wanted = dict((name, value) for name, value in reversed(pairs))
        found = []
        for probe in probes:
            if probe.source != wanted.get("Kondge-Gateway-Address") or probe.silent:
                continue
            try:
                sessions = request_values(probe, self.fuzzer.dictionary).get("Acct-Session-Id", [])
            except wire.Malformed:
                continue
            if any(text(s) == wanted.get("Acct-Session-Id") for s in sessions):
                found.append({"index": probe.index, "template": probe.template,
                              "port": probe.port, "hex": probe.data.hex()})
        return found[-10:]

    def _check(self) -> dict:
        r = self.service.kondge("--json", "accounting", "check")
        try:
            return json.loads(r.stdout)
        except ValueError:
            return {"failed": (r.stdout + r.stderr)[-600:]}

    def _accounting(self, batch: int) -> dict:
        t, report = self.fuzzer.tally, self._check()
        if "failed" in report:
            t.finding("accounting-check-failed", report["failed"], batch=batch)
            return {"accounting_check": None}
        for missing in report.get("missing", []):
            if _identity(missing) not in self.missing_before:
                t.finding("accounting-missing", json.dumps(missing), batch=batch)
        if report.get("answered", 0) < t.answered_accounting:
            t.finding("accounting-not-journalled",
                      f"{t.answered_accounting} answered, {report.get('answered')} journalled",
                      batch=batch)
        return {"accounting_check": {k: v for k, v in report.items() if k != "missing"},
                "accounting_missing": len(report.get("missing", []))}


def _identity(missing: dict) -> tuple:
    return tuple(missing.get(k) for k in ("gateway_id", "call_id", "acct_session_id", "status"))


# --- a run ---------------------------------------------------------------------------

@dataclass
class Run:
    seed: int
    packets: int
    batch: int
    rate: float
    duration: float
    timeout: float = 3.0


def fuzz(service, world: fp.World, probe_card: tuple, run: Run, dictionary,
         replay: list | None = None) -> dict:
    """Send run.packets packets (or the `replay` probes) in batches, checking
    after each; the report (see report_text)."""
    fuzzer = Fuzzer(service, world, dictionary, run.rate, run.timeout)
    generator = fp.Generator(world, dictionary, run.seed)
    checks = BatchChecks(service, fuzzer, probe_card)
    started, batches, sending = time.monotonic(), [], 0.0
    try:
        number = 0
        while fuzzer.tally.sent < run.packets and time.monotonic() - started < run.duration:
            size = min(run.batch, run.packets - fuzzer.tally.sent)
            probes = replay if replay is not None else generator.batch(number, size)
            fuzzer.slots.clear()
            seconds = fuzzer.send_batch(probes)
            sending += seconds
            checked = time.monotonic()
            result = checks.run(number, probes)
            result.update({"packets": len(probes), "send_seconds": round(seconds, 1),
                           "check_seconds": round(time.monotonic() - checked, 1)})
            batches.append(result)
            say(f"batch {number}: {len(probes)} packets in {seconds:.1f} s; "
                f"{sum(fuzzer.tally.findings.values())} findings so far")
            number += 1
            if replay is not None:
                break
    finally:
        fuzzer.close()
    return report(run, fuzzer.tally, batches, time.monotonic() - started, sending)


def report(run: Run, t: Tally, batches: list, seconds: float, sending: float) -> dict:
    return {
        "seed": run.seed, "rate_asked": run.rate, "packets_sent": t.sent,
        "batches": len(batches), "seconds": round(seconds, 1),
        "sending_seconds": round(sending, 1),
        "packets_per_second": round(t.sent / seconds, 1) if seconds else 0,
        "packets_per_second_sending": round(t.sent / sending, 1) if sending else 0,
        "mutations": dict(t.kinds.most_common()), "templates": dict(t.templates.most_common()),
        "answers_per_kind": {k: dict(v) for k, v in sorted(t.answers.items())},
        "answers": dict(t.codes.most_common()),
        "expected_silence": dict(t.expected_silence.most_common()),
        "unanswered_unmutated": dict(t.unanswered_unmutated.most_common()),
        "unanswered_unmutated_first": t.unanswered_samples,
        "stray_answers": t.stray_answers, "late_answers": t.late_answers,
        "send_errors": t.send_errors, "answered_accounting": t.answered_accounting,
        "findings_per_check": dict(t.findings.most_common()),
        "findings": t.kept, "checks": batches,
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def report_text(r: dict) -> str:
    lines = [f"seed {r['seed']}: {r['packets_sent']} packets in {r['batches']} batches, "
             f"{r['seconds']} s ({r['packets_per_second']} packets/s overall, "
             f"{r['packets_per_second_sending']}/s while sending at {r['rate_asked']:g}/s asked)",
             "", "answers: " + ", ".join(f"{k} {v}" for k, v in r["answers"].items()),
             f"answered accounting: {r['answered_accounting']}; answers after the timeout: "
             f"{r['late_answers']}; stray answers: {r['stray_answers']}; not sent (send "
             f"buffer full): {r['send_errors']}", "", "| mutation | packets | answers |",
             "|---|---|---|"]
    for kind, n in r["mutations"].items():
        answers = ", ".join(f"{k} {v}" for k, v in sorted(r["answers_per_kind"].get(kind, {}).items()))
        lines.append(f"| {kind} | {n} | {answers} |")
    lines += ["", "expected silence: " + ", ".join(f"{k} {v}" for k, v in
                                                   r["expected_silence"].items()),
              "unmutated and unanswered: " + (", ".join(
                  f"{k} {v}" for k, v in r["unanswered_unmutated"].items()) or "none"), ""]
    for c in r["checks"]:
        lines.append(f"batch {c['batch']}: processes {'; '.join(c['processes']) or 'same'}; "
                     f"login {'ok' if c['login_probe'] else 'FAILED'}; reconciliation "
                     f"{c['reconciliation']}; below limit {c['cards_below']}; parked "
                     f"{c['parked']} (and {c['set_aside']} without a known status, set aside); "
                     f"accounting check missing {c.get('accounting_missing')}; "
                     f"log errors {len(c['log_errors'])}; sent in {c['send_seconds']} s, "
                     f"checked in {c['check_seconds']} s")
    lines += ["", "findings: " + (", ".join(f"{k} {v}" for k, v in
                                            r["findings_per_check"].items()) or "none")]
    return "\n".join(lines) + "\n"


def write_report(r: dict, out: Path):
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(r, indent=2, default=str))
    (out / "report.txt").write_text(report_text(r))
    with open(out / "findings.jsonl", "w") as f:
        for finding in r["findings"]:
            f.write(json.dumps(finding, default=str) + "\n")


# --- make fuzz: a service of its own ---------------------------------------------------

class PrivateService:
    """What the checks need of a running service (as tests/conftest.py's Service)."""

    def __init__(self, env):
        self.env = env
        self.settings = config.load(env)
        self.db = Database(self.settings.dsn)

    def kondge(self, *args):
        return kondge(self.env, *args)


def start_service(workers: int) -> PrivateService:
    env = service_env(VAR, PG_PORT, KONDGE_WORKERS=str(workers), KONDGE_GATEWAY_SYNC="0.5")
    say(f"setting up the service in {VAR}")
    start_fresh(env, VAR)
    service = PrivateService(env)
    for name, address, secret, dialect, ma in GATEWAYS:
        r = service.kondge("gateways", "add", "--name", name, "--address", address,
                           "--secret", secret, "--dialect", dialect,
                           "--message-authenticator", ma)
        if r.returncode != 0:
            raise SystemExit(f"gateway {name} not added: {r.stdout}{r.stderr}")
    return service


def dump_batch(world, dictionary, seed: int, number: int, size: int, out: Path) -> Path:
    path = out / f"batch-{seed}-{number}.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for probe in fp.Generator(world, dictionary, seed).batch(number, size):
            f.write(json.dumps(probe.to_json()) + "\n")
    return path


def replayed(path: Path) -> list:
    """The probes of a findings.jsonl (or a --dump-batch file), in order."""
    probes = []
    for i, line in enumerate(path.read_text().splitlines()):
        entry = json.loads(line)
        if "hex" in entry:
            probes.append(fp.Probe(entry["batch"], i, entry["template"], tuple(entry["kinds"]),
                                   entry["source"], entry["port"], i % fp.SOCKETS,
                                   bytes.fromhex(entry["hex"]), entry.get("repeat", 1),
                                   tuple(entry.get("expected_silence", ()))))
    return probes


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="bench/fuzz.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--packets", type=int, default=100_000, help="packets to send in all")
    parser.add_argument("--rate", type=float, default=1000.0, help="packets sent a second")
    parser.add_argument("--duration", type=float, default=300.0,
                        help="stop starting batches after this many seconds")
    parser.add_argument("--seed", type=int, default=1, help="what every packet is made from")
    parser.add_argument("--batch", type=int, default=10_000,
                        help="packets between two rounds of checks")
    parser.add_argument("--timeout", type=float, default=3.0,
                        help="seconds to wait for an answer before counting none")
    parser.add_argument("--workers", type=int, default=4, help="KONDGE_WORKERS of the service")
    parser.add_argument("--out", type=Path, default=OUT, help="where the report goes")
    parser.add_argument("--dump-batch", type=int, metavar="N",
                        help="write batch N's packets to OUT/batch-SEED-N.jsonl, send nothing")
    parser.add_argument("--replay", type=Path, metavar="FILE",
                        help="send the packets of a findings.jsonl (or dump) instead")
    parser.add_argument("--keep", action="store_true",
                        help="leave the service running afterwards (stop: KONDGE_VAR=var/"
                             "fuzz-run .venv/bin/kondge server stop)")
    args = parser.parse_args(argv)
    for name in ("packets", "rate", "duration", "batch", "timeout", "workers"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be above 0")
    if args.replay is not None and not args.replay.is_file():
        parser.error(f"--replay {args.replay}: no such file")
    return args


def offline_gateways() -> tuple:
    """The gateways start_service makes, as world_gateways reads them back."""
    rows = [("demo-gw", "127.0.0.1", "testing123", "cisco", "optional")] + list(GATEWAYS)
    return tuple(fp.Gateway(name, address, secret.encode(), dialect, ma == "required")
                 for name, address, secret, dialect, ma in sorted(rows))


def main(argv=None) -> int:
    args = parse_args(argv)
    dictionary = wire.project_dictionary(HOME / "freeradius" / "dictionary")
    if args.dump_batch is not None:
        world, _ = world_of(args.seed, offline_gateways())
        say(f"wrote {dump_batch(world, dictionary, args.seed, args.dump_batch, args.batch, args.out)}")
        return 0
    try:
        service = start_service(args.workers)
    except SystemExit as exc:
        say(str(exc))
        return EXIT_UNAVAILABLE
    try:
        world, probe_card = make_world(service.db, load_key(service.settings.pin_key_file),
                                       args.seed)
        run = Run(args.seed, args.packets, args.batch, args.rate, args.duration, args.timeout)
        replay = replayed(args.replay) if args.replay else None
        result = fuzz(service, world, probe_card, run, dictionary, replay)
    finally:
        service.db.close()
        if not args.keep:
            service.kondge("server", "stop")
    write_report(result, args.out)
    print(report_text(result))
    return EXIT_REFUSED if result["findings_per_check"] else 0


if __name__ == "__main__":
    sys.exit(main())
