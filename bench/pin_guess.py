"""PIN guessing, measured: what a guesser gets through the real server, and
what the limits cost the success path.

    .venv/bin/python bench/pin_guess.py [--seconds 60] [--senders 16] [--calls 3000]
                                        [--baseline REV] [--pg-port 5621]

1. The success path (`cost`): kondge.radius_card as it is at --baseline
   (default: the merge-base with main; installed beside today's as
   kondge.radius_card_before) and as it is now, on the same database and the
   same 1,000 cards, called in alternating blocks: stage 1 (a new call on an
   access number) and stage 2 (its destination), every one with the right
   PIN. pin_guard holds 2,000 counters of other keys, as a server in use
   would. Mean and median time per call as the client sees it (over the
   socket, commit included), and the CPU time the PostgreSQL backend spent
   on it (/proc/PID/schedstat: steadier than clocks on a busy machine);
   then both called in a PL/pgSQL loop (stage 1 and stage 2 of one call
   again and again), backend CPU per call.

2. The attack (`attack`): the real service (`kondge server start` on a
   cluster of its own under var/bench-pin, FreeRADIUS on free ports), one
   card with a random 4-digit PIN, and --senders processes each sending
   Access-Requests as fast as the answers come, every request a new guess
   (the 10,000 PINs shuffled and shared out), each scenario through a
   gateway of its own:
     no-limits      KONDGE_PIN_*_TRIES=0: the server as it was (until the PIN is found)
     one-caller     the default limits, every guess from one caller number
     many-callers   the default limits, every guess from a new caller number
     cooldown-1s    KONDGE_PIN_CARD_COOLDOWN=1, a new caller number each guess: the
                    doubling of the cool-down, watched
     spray          every guess a new card number and caller number: the gateway's limit
   Meanwhile a bystander logs in with its own card through another gateway
   ten times a second. The limits are written to the database as `kondge
   server start` writes them (pin_guard.apply_policy).

Then the figures per hour, and how long the 10,000 PINs would take, from
the guesses each lock let through (measured, one-caller, many-callers and
cooldown-1s together) and the policy's cool-downs.

Writes var/bench/pin_guess.{json,txt}. Everything started is stopped, on
failure or Ctrl-C too.
"""

import argparse
import collections
import functools
import json
import math
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HOME = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HOME))

import psycopg2  # noqa: E402
import psycopg2.extras  # noqa: E402

from bench import tariffs as tariff_bench  # noqa: E402
from kondge_billing.store import cards, gateways  # noqa: E402
from kondge_billing import config  # noqa: E402
from kondge_billing.calls import pin_guard  # noqa: E402
from kondge_billing.operations import stack  # noqa: E402
from kondge_billing.config import PinPolicy  # noqa: E402
from kondge_billing.store.db import Database  # noqa: E402
from kondge_billing.identifiers import luhn_valid  # noqa: E402
from kondge_billing.store.pins import load_key, pin_hash  # noqa: E402

VAR = HOME / "var" / "bench-pin"
OUT = HOME / "var" / "bench"
KONDGE = [sys.executable, "-m", "kondge_billing.cli"]
ACCESS, DESTINATION = "18005550100", "447911123456"
SECRET = "bench-pin"
NO_LIMITS = PinPolicy(card_tries=0, caller_tries=0, gateway_tries=0)
# the exponent cap of a card's cool-down (sql/functions/pin_failed.sql)
DOUBLINGS = 20


def say(message):
    print(f"pin_guess: {message}", file=sys.stderr, flush=True)


def luhn_number(rng, length=12) -> str:
    body = "8" + "".join(rng.choice("0123456789") for _ in range(length - 2))
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


# --- 1. the success path -----------------------------------------------------------------

def install_baseline(dsn, rev):
    old = subprocess.run(["git", "-C", str(HOME), "show", f"{rev}:sql/functions/radius_card.sql"],
                         capture_output=True, text=True, check=True).stdout
    old = old.replace("FUNCTION kondge.radius_card(", "FUNCTION kondge.radius_card_before(")
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute(old)
    conn.close()


def cost(s, key, calls, rev) -> dict:
    install_baseline(s.dsn, rev)
    db = Database(s.dsn, timeout_ms=600_000)
    rng = random.Random(7)
    numbers = []

    def add(cur):
        for _ in range(1000):
            number = luhn_number(rng)
            cards.add(cur, key, number, "4321", "100.00", "USD")
            numbers.append(number)
        cur.execute("""INSERT INTO kondge.pin_guard (scope, key, failures, window_start,
                                                     last_failure)
                       SELECT CASE WHEN i % 2 = 0 THEN 'card' ELSE 'caller' END,
                              (7000000000 + i)::text, 1 + i % 3, now(), now()
                         FROM generate_series(1, 2000) i""")
        cur.execute("ANALYZE")
    db.transaction(add)
    db.close()
    hashes = {n: pin_hash(key, n, "4321") for n in numbers}
    conn = psycopg2.connect(s.dsn)
    conn.autocommit = True
    wall = {v: {"stage1": [], "stage2": []} for v in ("before", "now")}
    cpu = {v: {"stage1": [], "stage2": []} for v in ("before", "now")}
    sql = "SELECT * FROM kondge.{fn}(%s, %s, %s, %s, %s, 1, %s, %s, NULL, now())"
    block, done = 100, 0
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        backend = Path(f"/proc/{cur.fetchone()[0]}/schedstat")
        while done < calls:
            order = ("before", "now") if (done // block) % 2 == 0 else ("now", "before")
            for variant in order:
                fn = "radius_card_before" if variant == "before" else "radius_card"
                for i in range(done, done + block):
                    number = numbers[i % len(numbers)]
                    call = f"{variant}-{i}"
                    caller = f"1555{i % 1000000:07d}"
                    for stage, called in (("stage1", ACCESS), ("stage2", DESTINATION)):
                        ran = _cpu_ns(backend)
                        t = time.perf_counter()
                        cur.execute(sql.format(fn=fn), (number, hashes[number], caller, called,
                                                        caller, call, call))
                        row = cur.fetchone()
                        wall[variant][stage].append(time.perf_counter() - t)
                        cpu[variant][stage].append(_cpu_ns(backend) - ran)
                        assert row is not None
            done += block
        looped = loop_cpu(cur, backend, numbers[0], hashes[numbers[0]])
    conn.close()
    result = {"calls": done, "pin_guard_rows": 2000, "baseline": rev, "loop": looped}
    for variant in ("before", "now"):
        result[variant] = {
            stage: {"mean_us": round(1e6 * statistics.mean(ts), 1),
                    "median_us": round(1e6 * statistics.median(ts), 1),
                    "backend_cpu_mean_us": round(statistics.mean(cpu[variant][stage]) / 1000, 1)}
            for stage, ts in wall[variant].items()}
    for stage in ("stage1", "stage2"):
        for measure, key_ in (("mean_us", "change_percent"),
                              ("backend_cpu_mean_us", "cpu_change_percent")):
            b, n = result["before"][stage][measure], result["now"][stage][measure]
            result[f"{stage}_{key_}"] = round(100 * (n - b) / b, 1)
    return result


def loop_cpu(cur, backend: Path, number: str, hashed: str, rounds=40, calls=200) -> dict:
    """The backend CPU per call of each version, called in a PL/pgSQL loop
    (no client, no commit between calls): stage 1 again and stage 2 again of
    one call, the rounds in shuffled order; the median of the rounds."""
    fns = {"before": "radius_card_before", "now": "radius_card"}
    times = {(v, st): [] for v in fns for st in ("stage1", "stage2")}
    for variant, fn in fns.items():
        cur.execute(f"SELECT * FROM kondge.{fn}(%s, %s, '15550000000', %s, '15550000000', 1, "
                    f"%s, %s, NULL, now())", (number, hashed, ACCESS, f"loop-{fn}",
                                               f"loop-{fn}"))
        cur.execute(f"""CREATE OR REPLACE FUNCTION pg_temp.loop_{fn}(called text, k integer)
                        RETURNS void LANGUAGE plpgsql AS $$
                        BEGIN
                            FOR i IN 1..k LOOP
                                PERFORM * FROM kondge.{fn}('{number}', '{hashed}',
                                    '15550000000', called, '15550000000', 1, 'loop-{fn}',
                                    'loop-{fn}', NULL, now());
                            END LOOP;
                        END $$""")
    order = list(times)
    for _ in range(rounds):
        random.shuffle(order)
        for variant, stage in order:
            ran = _cpu_ns(backend)
            cur.execute(f"SELECT pg_temp.loop_{fns[variant]}(%s, %s)",
                        (ACCESS if stage == "stage1" else DESTINATION, calls))
            times[(variant, stage)].append((_cpu_ns(backend) - ran) / calls / 1000)
    return {f"{v}_{st}_us": round(statistics.median(ts), 1) for (v, st), ts in times.items()}


def _cpu_ns(schedstat: Path) -> int:
    """The CPU time a process has run, in ns (/proc/PID/schedstat)."""
    return int(schedstat.read_text().split()[0])


# --- 2. the attack -------------------------------------------------------------------------

def sender(port, source, card, guesses, callers, seconds, found, out):
    """One sender: Access-Requests as fast as answers come, until the time is
    up or a sender found the PIN; a guess not answered "wrong PIN" (locked,
    no answer) is tried again later. Puts (answers by code, the PIN if found)."""
    from tests.support.radius import RadiusClient
    client = RadiusClient(port, port + 1, SECRET, source=source, timeout=2.0)
    counts, hit = {}, None
    deadline = time.monotonic() + seconds
    todo = collections.deque(guesses)
    i = 0
    try:
        while todo and time.monotonic() < deadline and not found.is_set():
            guess = todo.popleft()
            i += 1
            number = card(i) if callable(card) else card
            reply = client.access([("User-Name", number), ("User-Password", guess),
                                   ("Calling-Station-Id", callers(i)),
                                   ("Called-Station-Id", ACCESS)])
            answer = "none" if reply is None else (
                "0" if reply.accepted else reply.h323("h323-return-code"))
            counts[answer] = counts.get(answer, 0) + 1
            if answer not in ("0", "2"):
                todo.append(guess)
            if answer == "0":
                hit = guess
                found.set()
    finally:
        client.close()
    out.put((counts, hit))


class Bystander(threading.Thread):
    """An honest caller with its own card and gateway, ten logins a second."""

    def __init__(self, port, source, number):
        super().__init__(daemon=True)
        self.port, self.source, self.number = port, source, number
        self.stop, self.latencies, self.failed = threading.Event(), [], 0

    def run(self):
        sys.path.insert(0, str(HOME))
        from tests.support.radius import RadiusClient
        client = RadiusClient(self.port, self.port + 1, SECRET, source=self.source, timeout=2.0)
        try:
            while not self.stop.is_set():
                t = time.perf_counter()
                reply = client.access([("User-Name", self.number), ("User-Password", "4321"),
                                       ("Calling-Station-Id", "15558880000"),
                                       ("Called-Station-Id", ACCESS)])
                if reply is not None and reply.accepted:
                    self.latencies.append(1000 * (time.perf_counter() - t))
                else:
                    self.failed += 1
                self.stop.wait(0.1)
        finally:
            client.close()

    def summary(self):
        lat = sorted(self.latencies)
        return {"ok": len(lat), "failed": self.failed,
                "p50_ms": round(lat[len(lat) // 2], 2) if lat else None,
                "p99_ms": round(lat[int(len(lat) * 0.99)], 2) if lat else None}


def attack(s, key, name, source, policy, senders, seconds, spray=False, one_caller=True):
    db = Database(s.dsn)
    db.run(lambda cur: pin_guard.apply_policy(cur, policy))
    rng = random.Random()
    pin = f"{rng.randrange(10000):04d}"
    number = luhn_number(rng)
    db.run(lambda cur: cards.add(cur, key, number, pin, "10.00", "USD"))
    audited = db.run(lambda cur: (cur.execute(
        "SELECT coalesce(max(id), 0) AS id FROM kondge.audit_log"), cur.fetchone())[1])["id"]
    space = [f"{i:04d}" for i in range(10000)]
    rng.shuffle(space)
    found = multiprocessing.Event()
    out = multiprocessing.Queue()
    procs = []
    for k in range(senders):
        guesses = space[k::senders]
        if spray:
            card = _spray_number
            callers = _spray_caller
        else:
            card = number
            callers = (functools.partial(_one_caller, SCENARIO_CALLERS[name]) if one_caller
                       else _spray_caller)
        procs.append(multiprocessing.Process(target=sender, args=(
            s.auth_port, source, card, guesses, callers, seconds, found, out)))
    started = time.monotonic()
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    elapsed = time.monotonic() - started
    for p in procs:
        p.join()
    counts = {}
    for c, _hit in results:
        for k, v in c.items():
            counts[k] = counts.get(k, 0) + v
    hit = next((h for _c, h in results if h), None)
    answered = sum(v for k, v in counts.items() if k != "none")
    locks = db.run(lambda cur: (cur.execute(
        "SELECT count(*) AS n FROM kondge.audit_log WHERE action = 'pin lock' AND id > %s "
        "AND (selection->>'card' = %s OR %s)", (audited, number, spray)), cur.fetchone())[1])["n"]
    db.close()
    return {"scenario": name, "seconds": round(elapsed, 1), "requests_answered": answered,
            "requests_per_second": round(answered / elapsed),
            "answers": dict(sorted(counts.items())),
            "guesses_evaluated": counts.get("2", 0) + counts.get("0", 0),
            "found": hit == pin, "locks": locks,
            "policy": policy.__dict__}


# each scenario's one caller number, so that no scenario inherits another's count
SCENARIO_CALLERS = {"no-limits": "15559990001", "one-caller": "15559990002"}


def _one_caller(number, _i):
    return number


def _spray_caller(_i):
    return f"1555{random.randrange(10 ** 7):07d}"


def _spray_number(_i):
    return luhn_number(random)


def model(evaluated_per_lock, policy: PinPolicy) -> dict:
    """Guesses on one card number within an hour, a day, a year, and the time
    the 10,000 PINs take: each lock lets `evaluated_per_lock` through, and
    the k-th lock in a row lasts cool-down * 2^min(k-1, 20)."""
    c = policy.card_cooldown
    year = 365 * 86400
    per = {label: round(evaluated_per_lock * locks_started_within(t, c))
           for label, t in (("hour", 3600), ("day", 86400), ("year", year))}
    cycles = math.ceil(10000 / evaluated_per_lock)
    total = sum(c * 2 ** min(k, DOUBLINGS) for k in range(cycles - 1))
    return {"guesses_per_lock": evaluated_per_lock, "guesses_first_hour": per["hour"],
            "guesses_first_day": per["day"], "guesses_first_year": per["year"],
            "years_for_10000_pins": round(total / year),
            "chance_first_year_percent": round(100 * per["year"] / 10000, 2)}


# --- running it ----------------------------------------------------------------------------

def env_for(pg_port):
    env = dict(os.environ, KONDGE_VAR=str(VAR), KONDGE_PG_PORT=str(pg_port),
               KONDGE_PIN_KEY=str(VAR / "pin.key"), KONDGE_AUTH_PORT=str(_free_port()),
               KONDGE_ACCT_PORT=str(_free_port()))
    env.pop("KONDGE_DSN", None)
    env.pop("KONDGE_RADIUS_DSN", None)
    return env


def _free_port():
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="per attack scenario")
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--calls", type=int, default=3000, help="of each radius_card version")
    parser.add_argument("--baseline", help="the revision of the radius_card to compare "
                                           "(default: the merge-base with main)")
    parser.add_argument("--pg-port", type=int, default=5621)
    parser.add_argument("--skip", choices=("cost", "attack"), action="append", default=[])
    args = parser.parse_args()
    rev = args.baseline or subprocess.run(
        ["git", "-C", str(HOME), "merge-base", "HEAD", "main"], capture_output=True,
        text=True, check=True).stdout.strip()
    VAR.mkdir(parents=True, exist_ok=True)
    OUT.mkdir(parents=True, exist_ok=True)
    keyfile = VAR / "pin.key"
    if not keyfile.exists():
        keyfile.write_text(os.urandom(32).hex())
        keyfile.chmod(0o600)
    env = env_for(args.pg_port)
    s = config.load(env)
    key = load_key(keyfile)
    stack.stop_background(s)
    tariff_bench.drop_database(s)
    results = {"machine_cpus": os.cpu_count(), "senders": args.senders,
               "started_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        started = subprocess.run(KONDGE + ["server", "start"], env=env, cwd=HOME,
                                 capture_output=True, text=True, timeout=300)
        if started.returncode != 0:
            raise SystemExit(started.stdout + started.stderr)
        if "cost" not in args.skip:
            say(f"the success path: {args.calls} calls of each radius_card, baseline {rev[:10]}")
            results["cost"] = cost(s, key, args.calls, rev)
            say(json.dumps(results["cost"]))
        if "attack" not in args.skip:
            results["attack"] = run_attacks(s, key, args)
    finally:
        subprocess.run(KONDGE + ["server", "stop"], env=env, cwd=HOME, capture_output=True,
                       text=True, timeout=120)
    text = report(results)
    (OUT / "pin_guess.json").write_text(json.dumps(results, indent=2) + "\n")
    (OUT / "pin_guess.txt").write_text(text)
    print(text)
    say(f"results in {OUT / 'pin_guess.json'} and {OUT / 'pin_guess.txt'}")
    return 0


def run_attacks(s, key, args) -> dict:
    db = Database(s.dsn)
    sources = {}
    names = ("no-limits", "one-caller", "many-callers", "cooldown-1s", "spray", "bystander")
    for i, name in enumerate(names):
        address = f"127.0.3.{i + 1}"
        db.run(lambda cur: gateways.add(cur, f"pin-{name}", address, SECRET, "cisco"))
        sources[name] = address
    bystander_card = luhn_number(random.Random(3))
    db.run(lambda cur: cards.add(cur, key, bystander_card, "4321", "10.00", "USD"))
    db.close()
    _wait_served(s, sources["bystander"], bystander_card)     # the gateways, added together
    default = s.pin_policy
    plans = [("no-limits", NO_LIMITS, {}),
             ("one-caller", default, {}),
             ("many-callers", default, {"one_caller": False}),
             ("cooldown-1s", PinPolicy(**{**default.__dict__, "card_cooldown": 1}),
              {"one_caller": False}),
             ("spray", default, {"spray": True})]
    out = {"default_policy": default.__dict__, "scenarios": []}
    for name, policy, kw in plans:
        watcher = Bystander(s.auth_port, sources["bystander"], bystander_card)
        watcher.start()
        say(f"attack {name}: {args.senders} senders for up to {args.seconds:g} s")
        r = attack(s, key, name, sources[name], policy, args.senders, args.seconds, **kw)
        watcher.stop.set()
        watcher.join()
        r["bystander"] = watcher.summary()
        say(json.dumps(r))
        out["scenarios"].append(r)
    locking = [r for r in out["scenarios"]
               if r["scenario"] in ("one-caller", "many-callers", "cooldown-1s")]
    per_lock = (sum(r["guesses_evaluated"] for r in locking)
                / max(sum(r["locks"] for r in locking), 1))
    out["model_default"] = model(per_lock, default)
    fast = next(r for r in out["scenarios"] if r["scenario"] == "cooldown-1s")
    out["cooldown_1s_locks_expected"] = locks_started_within(fast["seconds"], 1)
    out["cooldown_1s_locks_measured"] = fast["locks"]
    return out


def locks_started_within(seconds, cooldown):
    """How many locks of one card number a guesser starts within `seconds`
    (the first at 0; the k-th lasts cooldown * 2^min(k-1, 20))."""
    n, t = 0, 0.0
    while t <= seconds:
        t += cooldown * 2 ** min(n, DOUBLINGS)
        n += 1
    return n


def _wait_served(s, source, number, timeout=30.0):
    from tests.support.radius import RadiusClient
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client = RadiusClient(s.auth_port, s.acct_port, SECRET, source=source, timeout=0.5)
        try:
            reply = client.access([("User-Name", number), ("User-Password", "4321"),
                                   ("Called-Station-Id", ACCESS)])
        finally:
            client.close()
        if reply is not None and reply.accepted:
            return
        time.sleep(0.2)
    raise SystemExit(f"gateway {source} not served after {timeout} s")


def report(results) -> str:
    lines = [f"bench/pin_guess.py, {results['started_at']}, {results['machine_cpus']} CPUs, "
             f"{results['senders']} senders", ""]
    c = results.get("cost")
    if c:
        lines += [f"radius_card, right PIN, {c['calls']} calls of each, baseline "
                  f"{c['baseline'][:10]}, pin_guard with {c['pin_guard_rows']} rows; "
                  "client time mean/median, PostgreSQL backend CPU mean, in us:",
                  f"{'':<8} {'stage 1':>28} {'stage 2':>28}"]
        for v in ("before", "now"):
            cells = [f"{c[v][st]['mean_us']:>9}/{c[v][st]['median_us']:<9} "
                     f"cpu {c[v][st]['backend_cpu_mean_us']:>6}" for st in ("stage1", "stage2")]
            lines.append(f"{v:<8} {cells[0]:>28} {cells[1]:>28}")
        lp = c["loop"]
        lines += [f"change   stage 1 {c['stage1_change_percent']:+} % (cpu "
                  f"{c['stage1_cpu_change_percent']:+} %), stage 2 {c['stage2_change_percent']:+} % "
                  f"(cpu {c['stage2_cpu_change_percent']:+} %)",
                  f"in a PL/pgSQL loop (backend CPU per call, median of 40 rounds): stage 1 "
                  f"again {lp['before_stage1_us']} -> {lp['now_stage1_us']} us, stage 2 again "
                  f"{lp['before_stage2_us']} -> {lp['now_stage2_us']} us", ""]
    a = results.get("attack")
    if a:
        head = (f"{'scenario':<13} {'s':>5} {'req/s':>6} {'evaluated':>9} {'found':>5} "
                f"{'locks':>5}  answers{'':<24} bystander ok/failed p50/p99 ms")
        lines += [head, "-" * len(head)]
        for r in a["scenarios"]:
            b = r["bystander"]
            lines.append(f"{r['scenario']:<13} {r['seconds']:>5} {r['requests_per_second']:>6} "
                         f"{r['guesses_evaluated']:>9} {str(r['found']):>5} {r['locks']:>5}  "
                         f"{json.dumps(r['answers']):<31} {b['ok']}/{b['failed']} "
                         f"{b['p50_ms']}/{b['p99_ms']}")
        m = a["model_default"]
        lines += ["", f"one card under the default limits: {m['guesses_per_lock']:.1f} guesses "
                      f"a lock; {m['guesses_first_hour']} in the first hour, "
                      f"{m['guesses_first_day']} in a day, {m['guesses_first_year']} in a year "
                      f"({m['chance_first_year_percent']} % of a 4-digit PIN); the 10,000 PINs: "
                      f"{m['years_for_10000_pins']} years",
                  f"cool-down 1 s: {a['cooldown_1s_locks_measured']} locks in a row "
                  f"measured, {a['cooldown_1s_locks_expected']} expected from the doubling"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
