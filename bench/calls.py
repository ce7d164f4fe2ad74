"""make bench: complete prepaid calls through the real stack, at increasing offered load.

Starts a private stack under var/bench-calls (its own PostgreSQL cluster on
port 5496, FreeRADIUS with the Python module on free ports, started with
`kondge server start` like the tests), loads a realistic data set fast and
reproducibly (100,000 cards by COPY with their opening ledger entries, a
100,000-prefix rate deck, 256 gateways on 127.0.1.x / 127.0.2.x with their
own secrets), then drives complete calls (bench/loadgen.py: stage 1,
stage 2, Start and Stop of both legs) open-loop at increasing offered rates.

In the same run, on the same machine, the same generator blasts two
minimal FreeRADIUS instances (bench/minimal_radius.py): unlang only (the
protocol ceiling) and rlm_sql doing one SELECT by key per packet.

After the run, the billing check: CDRs = calls whose billed Stop was
answered; sum of CDR charges = sum of ledger 'call' debits = opening minus
current balances; no prepaid balance below zero; kondge.v_balance_mismatch
empty. A failed check exits non-zero.

Writes var/bench/calls.json, var/bench/calls.txt and var/bench/calls.png.
Progress goes to stderr. Everything started is stopped, on failure or
Ctrl-C too.

    .venv/bin/python bench/calls.py [--quick] [--cards N] [--steps 50,100,...]
"""

import argparse
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

HOME = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HOME))

import psycopg2  # noqa: E402
import psycopg2.extras  # noqa: E402

from bench import loadgen, minimal_radius, tariffs as tariff_bench  # noqa: E402
from kondge_billing import config  # noqa: E402
from kondge_billing.store import gateways  # noqa: E402
from kondge_billing.operations import stack  # noqa: E402
from kondge_billing.store.issuance import luhn_digit  # noqa: E402
from kondge_billing.store.pins import load_key, pin_hash  # noqa: E402
from kondge_billing.identifiers import luhn_valid  # noqa: E402

VAR = HOME / "var" / "bench-calls"
OUT = HOME / "var" / "bench"
PG_PORT = 5496
KONDGE = [sys.executable, "-m", "kondge_billing.cli"]
CATEGORY = "bench"
OPENING_BALANCE = Decimal("100.00")
GATEWAYS = 256
SERVICE_STEPS = (50, 100, 150, 200, 400, 800)
CEILING_STEPS = (250, 500, 1000, 2000)


def say(message: str):
    print(f"bench: {message}", file=sys.stderr, flush=True)


def write_results(out: Path, name: str, lines: list, report: dict):
    """A bench's report as out/NAME.txt (the lines, printed too) and NAME.json."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.txt").write_text("\n".join(lines) + "\n")
    (out / f"{name}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print("\n".join(lines))


def bench_env(var: Path, pg_port: int = PG_PORT) -> dict:
    env = dict(os.environ)
    env.update({"KONDGE_VAR": str(var), "KONDGE_PG_PORT": str(pg_port),
                "KONDGE_AUTH_PORT": str(tariff_bench.free_port()),
                "KONDGE_ACCT_PORT": str(tariff_bench.free_port()),
                "KONDGE_LISTEN": "127.0.0.1", "KONDGE_PIN_KEY": str(var / "pin.key")})
    env.pop("KONDGE_DSN", None)
    return env


# --- the data set ---------------------------------------------------------------

def gateway_list() -> list[tuple[str, str]]:
    """256 gateways: 127.0.1.1-128 and 127.0.2.1-128, each with its own secret."""
    rnd = random.Random(11)
    return [(f"127.0.{1 + i // 128}.{1 + i % 128}",
             "bench-" + "".join(rnd.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(16)))
            for i in range(GATEWAYS)]


def card_list(count: int) -> list[tuple[str, str]]:
    """(number, PIN): 12-digit Luhn-valid numbers 8xxxxxxxxxx?, random 4-digit PINs."""
    rnd = random.Random(5)
    result = []
    for i in range(count):
        body = f"8{i:010d}"
        number = body + luhn_digit(body)
        result.append((number, f"{rnd.randrange(10000):04d}"))
    assert all(luhn_valid(n) for n, _ in result[:1000])
    return result


def destinations(prefixes: int, count: int = 5000) -> list[str]:
    """11-digit numbers, each under a random prefix of the bench deck (so each has a rate)."""
    rnd = random.Random(9)
    width = len(str(prefixes - 1))
    base = 2 * 10 ** width
    return [(str(base + rnd.randrange(prefixes)) + f"{rnd.randrange(10 ** 10):010d}")[:11]
            for _ in range(count)]


def load_dataset(s, env: dict, cards: list, gws: list, prefixes: int) -> dict:
    timings = {}
    t = time.perf_counter()
    path = tariff_bench.deck(prefixes, "benchcalls", VAR)
    timings["deck_generate_seconds"] = round(time.perf_counter() - t, 2)
    timings["deck_load_seconds"] = round(tariff_bench.load_seconds(env, path), 2)
    say(f"rate deck of {prefixes} prefixes loaded in {timings['deck_load_seconds']} s")
    key = load_key(s.pin_key_file)
    conn = psycopg2.connect(s.dsn)
    try:
        with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            t = time.perf_counter()
            cur.execute("SELECT id FROM kondge.tariff WHERE name = 'benchcalls'")
            tariff_id = cur.fetchone()["id"]
            cur.execute("""INSERT INTO kondge.category (name, description, currency, max_calls)
                           VALUES (%s, 'benchmark cards (bench/calls.py)', 'USD', 100)""",
                        (CATEGORY,))
            buf = io.StringIO()
            for number, pin in cards:
                buf.write(f"{number}\t{pin_hash(key, number, pin)}\tUSD\t"
                          f"{CATEGORY}\ten\t{tariff_id}\tactive\n")
            buf.seek(0)
            cur.copy_expert("COPY kondge.card (number, pin_hash, currency, category, "
                            "language, tariff_id, status) FROM STDIN", buf)
            cur.execute("UPDATE kondge.card SET activated_at = created_at WHERE category = %s",
                        (CATEGORY,))
            # the opening balance is the first ledger entry (the one writer of money)
            cur.execute("""WITH new AS (SELECT id, number FROM kondge.card
                                         WHERE category = %(category)s ORDER BY id)
                           SELECT count(*) FROM kondge.post_ledger(
                               ARRAY(SELECT id FROM new),
                               ARRAY(SELECT %(balance)s::numeric FROM new), 'issue',
                               ARRAY(SELECT 'issue:' || number FROM new), 'bench card')""",
                        {"category": CATEGORY, "balance": OPENING_BALANCE})
            for i, (address, secret) in enumerate(gws):
                gateways.add(cur, f"bench-gw-{i:03d}", address, secret, "cisco")
            timings["cards_load_seconds"] = round(time.perf_counter() - t, 2)
        conn.autocommit = True
        with conn.cursor() as cur:
            # the cards were written three times (inserted, activated, given
            # their balance): vacuumed now, not by autovacuum in the middle
            # of whichever step runs first
            cur.execute("VACUUM ANALYZE")
    finally:
        conn.close()
    # and written out now (a superuser's statement): a million cards' pages
    # left to the checkpointer are written during the first steps, whose p99
    # then measures the load, not the calls (docs/performance.md)
    conn = psycopg2.connect(stack.superuser_dsn(s))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CHECKPOINT")
    finally:
        conn.close()
    say(f"{len(cards)} cards with their ledger entries and {len(gws)} gateways loaded in "
        f"{timings['cards_load_seconds']} s")
    return timings


def fresh_database(s):
    tariff_bench.drop_database(s)
    stack.prepare_database(s)


# --- measuring the machine ------------------------------------------------------------

def proc_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) a process has used; 0 if it is gone."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_pids(s) -> list[int]:
    try:
        master = int((s.pg_data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    pids = [master]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == master:
                pids.append(int(entry.name))
    return pids


def kernel_udp_drops() -> int:
    """UDP datagrams the kernel dropped because a socket's receive buffer was
    full (RcvbufErrors in /proc/net/snmp), machine-wide, since boot."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()
             if line.startswith("Udp:")]
    return int(lines[1][lines[0].index("RcvbufErrors")])


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    kb = tariff_bench.rss_kb(pid)
    return round(kb / 1024, 1)


class CpuMeter:
    """CPU shares per step: the FreeRADIUS processes (front end and workers
    together), PostgreSQL, the whole machine."""

    def __init__(self, radius_pids: list, s, front_pid=None):
        self.radius_pids, self.s, self.front_pid = radius_pids, s, front_pid
        self.marks = []
        self.front = []

    def mark(self, *_args):
        pg = sum(proc_cpu(p) for p in postgres_pids(self.s))
        radius = sum(proc_cpu(p) for p in self.radius_pids)
        self.front.append(proc_cpu(self.front_pid))
        self.marks.append((time.monotonic(), radius, pg, machine_cpu(), kernel_udp_drops()))

    def shares(self) -> list[dict]:
        out = []
        for (t0, r0, p0, (b0, a0), d0), (t1, r1, p1, (b1, a1), d1) in zip(self.marks,
                                                                           self.marks[1:]):
            wall = t1 - t0
            out.append({"freeradius_cpu_percent": round(100 * (r1 - r0) / wall),
                        # of which the front end (when the hook runs in workers)
                        "frontend_cpu_percent": round(
                            100 * (self.front[len(out) + 1] - self.front[len(out)]) / wall),
                        "postgres_cpu_percent": round(100 * (p1 - p0) / wall),
                        "machine_busy_percent": round(100 * (b1 - b0) / max(a1 - a0, 1)),
                        "kernel_udp_drops": d1 - d0})
        return out


def drive(name: str, target, rates, seconds, processes, radius_pids, s,
          front_pid=None) -> list[dict]:
    meter = CpuMeter(radius_pids, s, front_pid)
    steps = [loadgen.Step(r, seconds) for r in rates]

    def on_step(i, step):
        meter.mark()
        say(f"{name}: offering {step.rate:g} calls/s for {step.seconds:g} s")

    results = loadgen.run(target, steps, processes, on_step=on_step)
    meter.mark()
    for r, share in zip(results, meter.shares()):
        r.update(share)
        say(f"{name}: {r['offered_calls_per_second']:g} offered -> {r['calls_per_second']} "
            f"calls/s, {r['packets_per_second']} packets/s, p99 {r['p99_ms_all']} ms, "
            f"{loadgen.describe_lost(r)}, failed {r['failed_total']}")
    return results


# --- the billing check ---------------------------------------------------------------

def quiesce(dsn: str, limit: float = 30.0):
    """Wait until the server has stored what it was still working on."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    last, stable_since = None, time.monotonic()
    deadline = time.monotonic() + limit
    with conn.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute("SELECT (SELECT count(*) FROM kondge.call_leg), "
                        "(SELECT count(*) FROM kondge.reservation)")
            now = cur.fetchone()
            if now != last:
                last, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since > 2.0:
                break
            time.sleep(0.5)
    conn.close()


BILLING_CHECK = """
WITH bench_card AS (SELECT id, balance FROM kondge.card WHERE category = %(category)s)
SELECT (SELECT count(*) FROM kondge.cdr d JOIN bench_card c ON c.id = d.card_id) AS cdrs,
       (SELECT coalesce(sum(d.charge), 0) FROM kondge.cdr d
          JOIN bench_card c ON c.id = d.card_id) AS cdr_charges,
       (SELECT coalesce(-sum(l.amount), 0) FROM kondge.ledger_entry l
          JOIN bench_card c ON c.id = l.card_id WHERE l.kind = 'call') AS ledger_debits,
       (SELECT count(*) * %(opening)s - coalesce(sum(balance), 0) FROM bench_card)
           AS balance_change,
       (SELECT count(*) FROM kondge.card c JOIN kondge.category k ON k.name = c.category
         WHERE k.billing = 'prepaid' AND c.balance < 0) AS prepaid_below_zero,
       (SELECT count(*) FROM kondge.v_balance_mismatch) AS balance_mismatches,
       (SELECT count(*) FROM kondge.unprocessed_record) AS unprocessed_records
"""


def billing_check(dsn: str, billed_stops: int, uncertain: int) -> dict:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(BILLING_CHECK, {"category": CATEGORY, "opening": OPENING_BALANCE})
            row = dict(cur.fetchone())
    finally:
        conn.close()
    problems = []
    if not billed_stops <= row["cdrs"] <= billed_stops + uncertain:
        problems.append(f"{row['cdrs']} CDRs for {billed_stops} calls completed"
                        + (f" (+ up to {uncertain} whose billed Stop went unanswered)"
                           if uncertain else ""))
    if not row["cdr_charges"] == row["ledger_debits"] == row["balance_change"]:
        problems.append(f"charges {row['cdr_charges']}, ledger debits {row['ledger_debits']}, "
                        f"balance change {row['balance_change']} differ")
    for key in ("prepaid_below_zero", "balance_mismatches", "unprocessed_records"):
        if row[key]:
            problems.append(f"{key.replace('_', ' ')}: {row[key]}")
    result = {k: str(v) if isinstance(v, Decimal) else v for k, v in row.items()}
    result.update({"calls_completed": billed_stops, "uncertain": uncertain,
                   "problems": problems, "ok": not problems})
    return result


# --- output ---------------------------------------------------------------------------

def table(results: dict) -> str:
    lines = [f"make bench (bench/calls.py), {results['started_at']}, {results['machine_cpus']} "
             f"CPUs; {results['cards']} cards, {results['prefixes']} prefixes, "
             f"{results['gateways']} gateways; FreeRADIUS worker processes: "
             f"{results.get('workers', 1)}; generator: {results['processes']} processes",
             ""]
    head = (f"{'target':<8} {'offered':>7} {'calls/s':>8} {'pkts/s':>8} "
            f"{'s1 p50/p99':>12} {'s2 p50/p99':>12} {'start p50/p99':>14} "
            f"{'stop p50/p99':>13} {'max ms':>7} {'lost':>6} {'fail':>5} "
            f"{'rad%':>5} {'pg%':>4} {'cpu%':>5} {'gen cpu s':>9} {'lag ms':>7}")
    lines += [head, "-" * len(head)]
    for name in ("service", "unlang", "sql"):
        for r in results["runs"].get(name, []):
            lat = r["latency"]
            cell = lambda k: f"{lat[k]['p50_ms']:.1f}/{lat[k]['p99_ms']:.1f}"  # noqa: E731
            worst = max(lat[k]["max_ms"] for k in lat)
            lines.append(
                f"{name:<8} {r['offered_calls_per_second']:>7g} {r['calls_per_second']:>8} "
                f"{r['packets_per_second']:>8} {cell('stage1'):>12} {cell('stage2'):>12} "
                f"{cell('start'):>14} {cell('stop'):>13} {worst:>7.0f} {r['lost_total']:>6} "
                f"{r['failed_total']:>5} {r['freeradius_cpu_percent']:>5} "
                f"{r['postgres_cpu_percent']:>4} {r['machine_busy_percent']:>5} "
                f"{r['generator_cpu_seconds']:>9} {r['schedule_lag_ms_max']:>7.0f}")
        lines.append("")
    peaks = results["peaks"]
    lines.append("best calls/s without loss or failure and p99 < 50 ms: " + ", ".join(
        f"{k} {v}" for k, v in peaks.items()))
    lines.append("most calls/s completed at any offered load: " + ", ".join(
        f"{k} {v}" for k, v in results["max_calls_per_second"].items()))
    lines.append("ratios within this run: " + ", ".join(
        f"{k} {v}" for k, v in results["ratios"].items()))
    lines.append("FreeRADIUS resident memory (MB) at the end: " + ", ".join(
        f"{k} {v}" for k, v in results["rss_mb"].items()))
    check = results.get("billing_check", {})
    lines.append(f"billing check: {'OK' if check.get('ok') else 'FAILED'}: {check.get('cdrs')} "
                 f"CDRs for {check.get('calls_completed')} calls completed; charges "
                 f"{check.get('cdr_charges')} = ledger debits {check.get('ledger_debits')} = "
                 f"balance change {check.get('balance_change')}; "
                 f"{check.get('prepaid_below_zero')} prepaid below zero, "
                 f"{check.get('balance_mismatches')} mismatches"
                 + "".join(f"\n  PROBLEM: {p}" for p in check.get("problems", [])))
    return "\n".join(lines) + "\n"


def chart(results: dict, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    styles = {"service": "o-", "unlang": "s--", "sql": "^--", "floor": "d--", "rows": "v--",
              "priced": "P--"}
    for name, runs in results["runs"].items():
        if not runs:
            continue
        style = styles.get(name, "x:")
        offered = [r["offered_calls_per_second"] for r in runs]
        # nothing answered: a gap, not a point at zero (timings only, never money)
        gap = lambda v: v if v > 0 else float("nan")  # noqa: E731
        ax1.plot(offered, [gap(r["calls_per_second"]) for r in runs], style, label=name)
        ax2.plot(offered, [gap(r["p99_ms_all"]) for r in runs], style, label=name)
    top = max(r["offered_calls_per_second"] for v in results["runs"].values() for r in v)
    ax1.plot([0, top], [0, top], ":", color="grey", label="offered")
    ax1.axhline(800, color="red", lw=0.8, label="target 800 calls/s")
    ax1.set(xlabel="offered calls/s", ylabel="completed calls/s", xscale="log", yscale="log",
            title="throughput (6 packets per call)")
    ax2.axhline(50, color="red", lw=0.8, label="target p99 50 ms")
    ax2.set(xlabel="offered calls/s", ylabel="p99 latency, all packets (ms)", xscale="log",
            yscale="log", title="p99 latency")
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Kondge billing, {results['cards']} cards, {results['machine_cpus']} CPUs, "
                 f"{results['started_at']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summarise(results: dict):
    """Peaks (clean: no loss, no failure, p99 < 50 ms; and the most completed at any
    load) and the service's ratios to the ceilings, within this one run."""
    runs = results["runs"]
    results["peaks"] = {k: best(v) for k, v in runs.items()}
    results["max_calls_per_second"] = {k: max(r["calls_per_second"] for r in v)
                                       for k, v in runs.items()}
    ratios = {}
    for key, figures in (("clean", results["peaks"]), ("max", results["max_calls_per_second"])):
        for other in ("unlang", "sql"):
            if figures.get(other) and "service" in figures:
                ratios[f"service_vs_{other}_{key}"] = round(figures["service"] / figures[other], 3)
    results["ratios"] = ratios


def best(runs: list) -> float:
    ok = [r["calls_per_second"] for r in runs
          if r["lost_total"] == 0 and r["failed_total"] == 0 and r["skipped"] == 0
          and r["p99_ms_all"] < 50]
    return max(ok, default=0.0)


# --- the run ----------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cards", type=int, default=100000)
    p.add_argument("--prefixes", type=int, default=100000)
    p.add_argument("--steps", default=",".join(map(str, SERVICE_STEPS)),
                   help="offered calls/s for the service, comma-separated")
    p.add_argument("--ceiling-steps", default=",".join(map(str, CEILING_STEPS)))
    p.add_argument("--seconds", type=float, default=10.0, help="length of each step")
    p.add_argument("--processes", type=int, default=4, help="load generator processes")
    p.add_argument("--no-ceilings", action="store_true", help="skip the unlang and sql runs")
    p.add_argument("--workers", type=int, default=None,
                   help="FreeRADIUS worker processes of the service (KONDGE_WORKERS; "
                        "default: the service's default)")
    p.add_argument("--out", default=str(OUT / "calls"), help="output path without suffix")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def on_term(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    if VAR.exists():
        stack.stop_background(config.load(bench_env(VAR)))
        shutil.rmtree(VAR)
    VAR.mkdir(parents=True)
    (VAR / "pin.key").write_text(os.urandom(32).hex())
    (VAR / "pin.key").chmod(0o600)
    env = bench_env(VAR)
    if args.workers is not None:
        env["KONDGE_WORKERS"] = str(args.workers)
    s = config.load(env)
    cards, gws = card_list(args.cards), gateway_list()
    results = {"started_at": time.strftime("%Y-%m-%d %H:%M:%S"), "machine_cpus": os.cpu_count(),
               "cards": args.cards, "prefixes": args.prefixes, "gateways": len(gws),
               "processes": args.processes, "step_seconds": args.seconds,
               "workers": s.workers,
               "command": "make bench  (.venv/bin/python bench/calls.py)", "runs": {},
               "rss_mb": {}}
    instances = []
    try:
        fresh_database(s)
        results["load"] = load_dataset(s, env, cards, gws, args.prefixes)
        say("starting the service (kondge server start)")
        started = subprocess.run(KONDGE + ["server", "start"], env=env, cwd=HOME,
                                 capture_output=True, text=True, timeout=180)
        if started.returncode != 0:
            raise RuntimeError("the service did not start:\n" + started.stdout + started.stderr)
        radius_pids = stack.radius_pids(s)
        say(f"FreeRADIUS processes: {radius_pids}")
        dests = destinations(args.prefixes)
        target = loadgen.Target(s.auth_port, s.acct_port, gws, cards, dests)
        say("warming up (20 calls/s for 3 s)")
        warm = loadgen.run(target, [loadgen.Step(20, 3)], args.processes)[0]
        rates = [float(r) for r in args.steps.split(",")]
        results["runs"]["service"] = drive("service", target, rates, args.seconds,
                                           args.processes, list(radius_pids.values()), s,
                                           radius_pids["freeradius"] if s.workers > 1 else None)
        say("waiting for the service to store what it still holds")
        quiesce(s.dsn)
        per_process = {name: rss_mb(pid) for name, pid in radius_pids.items()}
        results["rss_mb_per_process"] = per_process
        results["rss_mb"]["service"] = max(v for v in per_process.values() if v is not None)
        measured = results["runs"]["service"] + [warm]      # the warm-up's calls count too
        results["billing_check"] = billing_check(
            s.dsn, sum(r["billed_stops"] for r in measured), sum(r["uncertain"] for r in measured))
        if not args.no_ceilings:
            crates = [float(r) for r in args.ceiling_steps.split(",")]
            for kind in ("unlang", "sql"):
                auth, acct = tariff_bench.free_port(), tariff_bench.free_port()
                raddb = minimal_radius.write_raddb(VAR / f"radius-{kind}", kind, gws, auth,
                                                   acct, s.pg_socket_dir, s.pg_port)
                inst = minimal_radius.Instance(raddb)
                instances.append(inst)
                inst.start()
                t = loadgen.Target(auth, acct, gws, cards, dests)
                loadgen.run(t, [loadgen.Step(200, 2)], args.processes)       # warm-up
                results["runs"][kind] = drive(kind, t, crates, min(args.seconds, 5.0),
                                              args.processes, [inst.pid], s)
                results["rss_mb"][kind] = rss_mb(inst.pid)
                inst.stop()
    finally:
        for inst in instances:
            inst.stop()
        say("stopping the service")
        subprocess.run(KONDGE + ["server", "stop"], env=env, cwd=HOME, capture_output=True,
                       text=True, timeout=120)
        stack.stop_postgres(s)
    summarise(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    text = table(results)
    out.with_suffix(".txt").write_text(text)
    chart(results, out.with_suffix(".png"))
    print(text)
    print(f"bench: results in {out}.json, {out}.txt and {out}.png")
    if not results["billing_check"]["ok"]:
        say("BILLING CHECK FAILED: " + "; ".join(results["billing_check"]["problems"]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
