"""The floor: the most complete calls per second this machine could carry with
the least work any per-packet Python hook storing records must do, beside
the service, in one run.

Three targets take turns at each offered rate, each with the service's front
end (freeradius/frontend.conf, as the supervisor runs it) in front of the
same number of worker processes, on one PostgreSQL cluster of their own
(var/bench-floor, port 5494) holding `make bench`'s data set (100,000 cards,
a 100,000-prefix deck, 256 gateways), driven by the same load generator:

  unlang   minimal_radius's unlang-only workers: the protocol ceiling of the
           front end and workers, no Python, no database;
  floor    minimal_radius's floor workers (bench/floor_hook.py): one psycopg2
           SELECT by key per Access-Request, one committed INSERT per
           Accounting-Request, under rlm_python3's lock, one connection per
           FreeRADIUS process;
  rows     minimal_radius's rows workers (bench/rows_hook.py): as the floor,
           but each packet's one statement writes the rows the service keeps
           for a call (login, hold, legs, CDR, ledger entry, balance) in the
           service's own tables, with no rule and constant prices: the
           least any design keeping those rows could cost;
  priced   minimal_radius's priced workers (bench/priced_hook.py): the rows,
           priced as the service's architecture prices them: the rate deck
           in PostgreSQL, the rating engine in the hook's Python, so two
           statements at stage 2 and at the billed Stop with the engine
           between them; still no rule: the least that architecture costs;
  service  the service itself (kondge server start), KONDGE_WORKERS workers.

The service does strictly more per packet than the floor (it checks the PIN
and the card's live calls, rates the destination, writes a hold at stage 2
and, at the billed Stop, the CDR, the ledger entry and the balance), so its
calls per second cannot exceed the floor's on the same machine: the floor
says what a target asks of the hardware before any billing is written, the
rows kind what writing the service's rows adds, priced/rows what pricing in
the hook's Python between two statements adds, and service/priced what the
call path's rules cost on top.

Writes var/bench/floor.json, floor.txt and floor.png (throughput and p99
against offered load, beside the 800 calls/s target); progress on stderr.
Exits 0 when every step ran and the service's billing check passed, 1 if it
failed, or the floor's database did not get the records it acknowledged,
or the rows or priced kind's the CDRs of the billed Stops it answered.

    .venv/bin/python bench/floor.py [--workers 4] [--steps 200,400,...]
        [--seconds 8] [--rounds 1] [--processes 4] [--no-service] [--no-rows]
        [--no-priced]
        [--perf-rate 120 [--perf-seconds 6]] [--hook-cpu | --hook-profile]

With --perf-rate, the step at that offered rate is also sampled by `perf`
for each kind (bench/cpu_split.py): the CPU a complete call by component
(FreeRADIUS, the Python in its workers, the kernel for each, PostgreSQL),
and the service's excess over the floor, part by part.

With --hook-cpu the service's hook adds up its own thread CPU and wall
time by packet kind inside FreeRADIUS (kondge_billing/edge/hook_profile.py):
each service step reports the µs of hook CPU an Access-Request, Start and
Stop takes, its system share, and how long each held its worker.
--hook-profile also runs the hook under cProfile (on the same clock, its
own cost included) and reports the functions by their own CPU over the
whole run.
"""

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

HOME = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HOME))

import psycopg2  # noqa: E402

from bench import calls, ceilings, cpu_split, loadgen, minimal_radius  # noqa: E402
from bench.rows_statements import MARKS  # noqa: E402
from kondge_billing.edge import hook_profile  # noqa: E402
from kondge_billing.operations import (cluster, privileges, radius_processes,  # noqa: E402
                                       supervisor)
from kondge_billing import config  # noqa: E402

VAR = HOME / "var" / "bench-floor"
PG_PORT = 5494
STEPS = (100, 200, 300, 400, 600, 800)
KINDS = ("unlang", "floor", "rows", "priced", "service")

FLOOR_TABLE = """
CREATE SCHEMA bench_floor;
CREATE TABLE bench_floor.record (
    id          bigserial PRIMARY KEY,
    call_id     text NOT NULL,
    leg         text,
    status      text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (call_id, leg, status)
);
"""


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=config.load({}).workers,
                   help="worker processes behind the front end (default: KONDGE_WORKERS's)")
    p.add_argument("--steps", default=",".join(map(str, STEPS)), help="offered calls/s")
    p.add_argument("--seconds", type=float, default=8.0, help="length of each step")
    p.add_argument("--rounds", type=int, default=1, help="times each step is run")
    p.add_argument("--processes", type=int, default=4, help="load generator processes")
    p.add_argument("--cards", type=int, default=100000)
    p.add_argument("--no-service", action="store_true",
                   help="the minimal workers only (unlang, floor, rows, priced)")
    p.add_argument("--no-rows", action="store_true",
                   help="without the rows workers (bench/rows_hook.py)")
    p.add_argument("--no-priced", action="store_true",
                   help="without the priced workers (bench/priced_hook.py)")
    p.add_argument("--perf-rate", type=float, default=None,
                   help="sample the step at this offered rate with perf, for each kind "
                        "(one of --steps; needs linux-perf and root)")
    p.add_argument("--perf-seconds", type=float, default=6.0,
                   help="how long perf samples, in the middle of the step (default 6)")
    p.add_argument("--hook-cpu", action="store_true",
                   help="the service's hook CPU inside FreeRADIUS, by packet kind, each step")
    p.add_argument("--hook-profile", action="store_true",
                   help="as --hook-cpu, and the hook's functions by their own CPU (cProfile)")
    p.add_argument("--out", default=str(calls.OUT / "floor"), help="output path without suffix")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers: 1 or more")
    if args.perf_rate is not None:
        if args.perf_rate not in [float(r) for r in args.steps.split(",")]:
            p.error(f"--perf-rate {args.perf_rate:g} is not one of --steps {args.steps}")
        if not 0 < args.perf_seconds <= args.seconds - 2:
            p.error(f"--perf-seconds must be above 0 and leave 2 s of the step "
                    f"(--seconds {args.seconds:g}) around it")
        why = cpu_split.unavailable()
        if why:
            p.error(f"--perf-rate: {why}")
    return args


def prepare_database(env: dict, cards: list, gws: list, prefixes: int) -> config.Settings:
    """The cluster with make bench's data set and the floor's record table."""
    VAR.mkdir(parents=True)
    key = VAR / "pin.key"
    key.write_text(os.urandom(32).hex())
    key.chmod(0o600)
    s = config.load(env)
    calls.fresh_database(s)
    calls.load_dataset(s, env, cards, gws, prefixes)
    conn = psycopg2.connect(s.dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(FLOOR_TABLE)
    finally:
        conn.close()
    return s


def start_workers(kind: str, count: int, secret: str, started: list) -> list:
    """`count` minimal `kind` workers on free loopback ports (three each), the front end
    their only client; [(name, port, pid)]."""
    workers = []
    for i in range(1, count + 1):
        port = radius_processes.free_ports(3)
        inst = minimal_radius.Instance(minimal_radius.write_raddb(
            ceilings.VAR / f"{kind}-worker-{i}", kind, [("127.0.0.1", secret)], port, None,
            worker=True))
        inst.start()
        started.append(inst)
        workers.append((f"kondge-worker-{i}", port, inst.pid))
    return workers


def records_stored(s) -> int:
    return _scalar(s, "SELECT count(*) FROM bench_floor.record")


def marked_cdrs(s, kind: str) -> int:
    """The CDRs the rows or priced kind wrote (their call keys are marked)."""
    return _scalar(s, f"SELECT count(*) FROM kondge.cdr WHERE call_key LIKE '{MARKS[kind]}%'")


def vacuum(s):
    """Every table of the bench's database vacuumed and analysed now."""
    _scalar(s, "VACUUM ANALYZE")


def _scalar(s, sql: str) -> int | None:
    """The one value `sql` answers (None: a statement without rows), autocommit."""
    conn = psycopg2.connect(s.dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0] if cur.description else None
    finally:
        conn.close()


def start_service(env: dict, workers: int, hook_env: dict | None = None
                  ) -> tuple[ceilings.Target, dict]:
    """The service on the bench cluster, as `kondge server start` starts it
    (with hook_env: the hook's CPU counted, hook_profile.py)."""
    env = dict(env, KONDGE_WORKERS=str(workers), **(hook_env or {}))
    if hook_env:            # the workers write their counts there, as the radius account
        folder = Path(hook_env["KONDGE_HOOK_CPU"].removesuffix(hook_profile.FUNCTIONS)).parent
        folder.mkdir(parents=True, exist_ok=True)
        account = privileges.radius_account(config.load(env))
        if account is not None:
            os.chown(folder, account.uid, account.gid)
    started = subprocess.run(calls.KONDGE + ["server", "start"], env=env, cwd=HOME,
                             capture_output=True, text=True, timeout=180)
    if started.returncode != 0:
        raise RuntimeError("the service did not start:\n" + started.stdout + started.stderr)
    s = config.load(env)
    pids = radius_processes.radius_pids(s)
    front = pids.pop("freeradius") if workers > 1 else None
    return ceilings.Target("service", s.auth_port, s.acct_port, list(pids.values()), front), env


def table(results: dict) -> str:
    lines = [f"bench/floor.py, {results['started_at']}, {results['machine_cpus']} CPUs; "
             f"the service's front end in front of {results['workers']} workers of each kind; "
             f"generator: {results['processes']} processes, {results['step_seconds']:g} s a step",
             "", "rad%: the front end and the workers (100 = one CPU); pg%: PostgreSQL; "
             "cpu%: the machine (100 = all CPUs)", ""]
    head = (f"{'workers':<8} {'offered':>7} {'calls/s':>8} {'pkts/s':>8} {'s1 p50/p99':>11} "
            f"{'s2 p50/p99':>11} {'start p50/p99':>13} {'stop p50/p99':>12} {'lost':>6} "
            f"{'fail':>5} {'rad%':>4} {'pg%':>4} {'cpu%':>4}")
    lines += [head, "-" * len(head)]
    for r in sorted(results["runs"], key=lambda r: (r["offered_calls_per_second"],
                                                    KINDS.index(r["run"]))):
        lat = r["latency"]
        cell = lambda k: f"{lat[k]['p50_ms']:.1f}/{lat[k]['p99_ms']:.1f}"  # noqa: E731
        lines.append(
            f"{r['run']:<8} {r['offered_calls_per_second']:>7g} {r['calls_per_second']:>8} "
            f"{r['packets_per_second']:>8} {cell('stage1'):>11} {cell('stage2'):>11} "
            f"{cell('start'):>13} {cell('stop'):>12} {r['lost_total']:>6} "
            f"{r['failed_total']:>5} {r['freeradius_cpu_percent']:>4} "
            f"{r['postgres_cpu_percent']:>4} {r['machine_busy_percent']:>4}")
    lines.append("")
    for name, v in results["summary"].items():
        lines.append(f"{name}: most {v['most_calls_per_second']} calls/s, clean (no loss, "
                     f"p99 < 50 ms) {v['clean_calls_per_second']} calls/s; FreeRADIUS "
                     f"{v['freeradius_cpu_us_per_packet']} us CPU a packet")
    lines.append("ratios within this run: " + ", ".join(
        f"{k} {v}" for k, v in results["ratios"].items()))
    if results.get("sizing"):
        lines += sizing_lines(results["sizing"])
    lines += cpu_split.table(results.get("cpu_split", {}), KINDS)
    lines += hook_lines(results)
    lines.append(f"floor records: {results['floor_records']} stored for "
                 f"{results['floor_accounting_answered']} Accounting-Requests answered")
    for kind in MARKS:
        if f"{kind}_cdrs" in results:
            lines.append(f"{kind} CDRs: {results[f'{kind}_cdrs']} written for "
                         f"{results[f'{kind}_billed_stops_answered']} billed Stops answered")
    check = results.get("billing_check")
    if check:
        lines.append(f"service billing check: {'OK' if check['ok'] else 'FAILED'}: "
                     f"{check['cdrs']} CDRs for {check['calls_completed']} calls completed; "
                     f"charges {check['cdr_charges']} = ledger debits {check['ledger_debits']} "
                     f"= balance change {check['balance_change']}"
                     + "".join(f"\n  PROBLEM: {p}" for p in check["problems"]))
    return "\n".join(lines) + "\n"


def hook_lines(results: dict) -> list:
    """The service's hook CPU inside FreeRADIUS, step by step (--hook-cpu)."""
    steps = [r for r in results["runs"] if r.get("hook_cpu")]
    if not steps:
        return []
    kinds = ("access", "start", "stop")
    lines = ["", "the service's hook inside FreeRADIUS, us a packet: thread CPU (its system "
             "share) / wall (the worker held: CPU and waits); a call = 2 of each kind",
             f"  {'offered':>7} " + " ".join(f"{k:>20}" for k in kinds) + f" {'a call':>16}"]
    for r in sorted(steps, key=lambda r: r["offered_calls_per_second"]):
        cpu = r["hook_cpu"]
        cells = [f"{cpu[k]['us_a_packet']:>6.0f} ({cpu[k]['system_share'] or 0:.2f}) / "
                 f"{cpu[k]['wall_us_a_packet']:>5.0f}" if k in cpu else f"{'-':>20}"
                 for k in kinds]
        call = (f"{2 * sum(cpu[k]['us_a_packet'] for k in kinds):>6.0f} / "
                f"{2 * sum(cpu[k]['wall_us_a_packet'] for k in kinds):>6.0f}"
                if all(k in cpu for k in kinds) else f"{'-':>16}")
        lines.append(f"  {r['offered_calls_per_second']:>7g} " + " ".join(cells) + f" {call}")
    if results.get("hook_functions"):
        lines += ["", "the hook's functions by their own thread CPU over the run "
                  "(cProfile, its own cost included):", results["hook_functions"].rstrip()]
    return lines


def sizing(runs: list) -> dict:
    """CPU-seconds per 1,000 complete calls of each kind, from its steps
    without loss (all its steps if none was), split into FreeRADIUS (the
    front end and the workers' own work: what the unlang workers cost a
    call), Python (the hook: the kind's worker CPU above the unlang
    workers') and PostgreSQL. CPU times, not money: floats."""
    out = {}
    for kind in KINDS:
        mine = [r for r in runs if r["run"] == kind and r["completed"]]
        clean = [r for r in mine if not r["lost_total"] and not r["failed_total"]]
        use = clean or mine
        done = sum(r["completed"] for r in use)
        if not done:
            continue
        per = lambda sec: round(1000 * sec / done, 2)  # noqa: E731
        radius = sum(r["answering_cpu_seconds"] + (r["frontend_cpu_seconds"] or 0) for r in use)
        out[kind] = {"steps": [r["offered_calls_per_second"] for r in use],
                     "clean_steps_only": bool(clean), "calls": done,
                     "radius_cpu_s": per(radius),
                     "postgres_cpu_s": per(sum(r.get("postgres_cpu_seconds", 0) for r in use))}
    base = out.get("unlang", {}).get("radius_cpu_s")
    for v in out.values():
        python = max(v["radius_cpu_s"] - base, 0.0) if base is not None else None
        v["python_cpu_s"] = None if python is None else round(python, 2)
        v["freeradius_cpu_s"] = round(v["radius_cpu_s"] - (python or 0), 2)
        v["total_cpu_s"] = round(v["radius_cpu_s"] + v["postgres_cpu_s"], 2)
        # one CPU core of the PostgreSQL primary carries this many calls/s
        v["calls_per_second_per_postgres_core"] = (
            round(1000 / v["postgres_cpu_s"]) if v["postgres_cpu_s"] else None)
    return out


def sizing_lines(table_: dict) -> list:
    lines = ["", "sizing, CPU-seconds per 1,000 complete calls (steps without loss): "
             "FreeRADIUS / Python / PostgreSQL = total; calls/s one PostgreSQL core carries"]
    for kind, v in table_.items():
        python = "-" if v["python_cpu_s"] is None else f"{v['python_cpu_s']:.2f}"
        lines.append(f"  {kind:<8} {v['freeradius_cpu_s']:>6.2f} / {python:>6} / "
                     f"{v['postgres_cpu_s']:>6.2f} = {v['total_cpu_s']:>6.2f} s; "
                     f"{v['calls_per_second_per_postgres_core'] or '-'} calls/s a PostgreSQL "
                     f"core" + ("" if v["clean_steps_only"] else " (every step lost calls)"))
    return lines


def ratios(summary: dict) -> dict:
    out = {}
    for a, b in (("floor", "unlang"), ("rows", "floor"), ("priced", "floor"),
                 ("priced", "rows"), ("service", "floor"), ("service", "rows"),
                 ("service", "priced"), ("service", "unlang")):
        for key in ("most", "clean"):
            top = summary.get(b, {}).get(f"{key}_calls_per_second")
            if a in summary and top:
                out[f"{a}/{b} {key}"] = round(summary[a][f"{key}_calls_per_second"] / top, 3)
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    gws, cards = calls.gateway_list(), calls.card_list(args.cards)
    data = (gws, cards, calls.destinations(100000))
    env = calls.bench_env(VAR, PG_PORT)
    if VAR.exists():
        supervisor.stop_background(config.load(env))
        shutil.rmtree(VAR)
    # the floor's and the unlang workers' front ends live under this run's folder
    ceilings.VAR = VAR / "radius"
    results = {"started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
               "machine_cpus": os.cpu_count(), "workers": args.workers,
               "processes": args.processes, "step_seconds": args.seconds,
               "command": " ".join([".venv/bin/python", "bench/floor.py"]
                                   + (argv if argv is not None else sys.argv[1:])),
               "runs": [], "cpu_split": {}}
    started, s, service_env = [], None, None
    hook_prefix = str(VAR / "hook" / "cpu") if args.hook_cpu or args.hook_profile else None
    hook_env = ({"KONDGE_HOOK_CPU": hook_prefix
                 + (hook_profile.FUNCTIONS if args.hook_profile else "")}
                if hook_prefix else None)
    try:
        s = prepare_database(env, cards, gws, 100000)
        os.environ["KONDGE_FLOOR_DSN"] = s.dsn
        targets = []
        left_out = {"rows": args.no_rows, "priced": args.no_priced}
        for kind in [k for k in KINDS[:-1] if not left_out.get(k)]:
            secret = secrets.token_urlsafe(24)
            workers = start_workers(kind, args.workers, secret, started)
            front = ceilings.frontend(f"frontend-{kind}", [(w, port) for w, port, _p in workers],
                                      secret, gws)
            started.append(front)
            targets.append(ceilings.Target(kind, front.s.auth_port, front.s.acct_port,
                                           [pid for _w, _port, pid in workers], front.proc.pid))
        if not args.no_service:
            calls.say("starting the service (kondge server start)")
            service, service_env = start_service(env, args.workers, hook_env)
            targets.append(service)
        billed = {"service": [], "rows": [], "priced": []}  # the warm-up's are billed too
        for target in targets:  # warm-up: every worker thread opens its connection
            warm = ceilings.one_step(loadgen, "current", target.name, target, data, 100, 4,
                                     args.processes)
            billed.get(target.name, []).append(warm)
        # the warm-up's rows (and the load's) vacuumed and analysed now: left to
        # autovacuum, its first pass lands in whichever kind's step runs a
        # minute after the load, and charges that kind a few CPU-seconds
        vacuum(s)
        before = records_stored(s)
        answered = 0
        # Each step starts on cards no earlier step used: a call the generator
        # abandons keeps its card's hold for KONDGE_HOLD_SECONDS, and a card
        # met again meanwhile is rightly refused (code 4 or 12).
        used = 100 * 4
        for rate in (float(r) for r in args.steps.split(",")):
            for i in range(args.rounds):
                for target in (targets if i % 2 == 0 else targets[::-1]):
                    start = used % len(cards)
                    used += int(rate * args.seconds * 1.2) + 100
                    step_data = (gws, cards[start:] + cards[:start], data[2])
                    pg0 = sum(calls.proc_cpu(pid) for pid in calls.postgres_pids(s))
                    hook0 = (hook_profile.read_totals(hook_prefix)
                             if hook_prefix and target.name == "service" else None)
                    t0 = time.monotonic()
                    sampling = (cpu_split.Recording(
                        VAR / "perf" / f"{target.name}.data", args.perf_seconds,
                        (args.seconds - args.perf_seconds) / 2)
                        if rate == args.perf_rate and i == 0 else None)
                    run = ceilings.one_step(loadgen, "current", target.name, target, step_data,
                                            rate, args.seconds, args.processes)
                    pg1 = sum(calls.proc_cpu(pid) for pid in calls.postgres_pids(s))
                    run["postgres_cpu_percent"] = round(100 * (pg1 - pg0)
                                                        / (time.monotonic() - t0))
                    run["postgres_cpu_seconds"] = round(pg1 - pg0, 3)
                    if hook0 is not None:   # each worker's totals as of its last 200th packet
                        run["hook_cpu"] = hook_profile.per_packet(
                            hook0, hook_profile.read_totals(hook_prefix))
                    if sampling is not None:     # perf's report: outside the step's timing
                        shares = sampling.shares()
                        results["cpu_split"][target.name] = {
                            "rate": rate, "calls_per_second": run["calls_per_second"],
                            "shares_percent": shares,
                            "ms_a_call": cpu_split.per_call(shares, os.cpu_count(),
                                                            run["calls_per_second"])}
                    results["runs"].append(run)
                    if target.name == "floor":
                        answered += sum(run["latency"][k]["count"] for k in ("start", "stop"))
                    billed.get(target.name, []).append(run)
                    if target.name == "service":
                        calls.quiesce(s.dsn)    # its backlog must not fall on the next target
                    else:
                        time.sleep(1.0)
        results["floor_records"] = records_stored(s) - before
        results["floor_accounting_answered"] = answered
        marked = {kind: marked_cdrs(s, kind) for kind in MARKS}
        for kind in MARKS:
            if billed[kind]:
                results[f"{kind}_cdrs"] = marked[kind]
                results[f"{kind}_billed_stops_answered"] = sum(r["billed_stops"]
                                                               for r in billed[kind])
        if billed["service"]:
            calls.quiesce(s.dsn)
            # the rows and priced kinds' calls are on the same cards' category: their
            # CDRs count among the check's, each charged as its ledger entry says
            results["billing_check"] = calls.billing_check(
                s.dsn, sum(r["billed_stops"] for r in billed["service"]) + sum(marked.values()),
                sum(r["uncertain"] for r in billed["service"]))
    finally:
        for proc in reversed(started):
            proc.stop()
        if service_env is not None:
            subprocess.run(calls.KONDGE + ["server", "stop"], env=service_env, cwd=HOME,
                           capture_output=True, text=True, timeout=120)
        if s is not None:
            cluster.stop_postgres(s)
    if args.hook_profile:
        results["hook_functions"] = hook_profile.top_functions(hook_prefix)
    results["summary"] = ceilings.summary(results["runs"])
    results["ratios"] = ratios(results["summary"])
    results["sizing"] = sizing(results["runs"])
    ceilings.save(results, table(results), Path(args.out))
    by_kind = {kind: sorted((r for r in results["runs"] if r["run"] == kind),
                            key=lambda r: r["offered_calls_per_second"]) for kind in KINDS}
    calls.chart({"runs": {k: v for k, v in by_kind.items() if v}, "cards": args.cards,
                 "machine_cpus": results["machine_cpus"],
                 "started_at": results["started_at"]}, Path(args.out).with_suffix(".png"))
    status = 0
    if results["floor_records"] < results["floor_accounting_answered"]:
        calls.say("the floor acknowledged records its database does not hold")
        status = 1
    for kind in MARKS:
        if results.get(f"{kind}_cdrs", 0) < results.get(f"{kind}_billed_stops_answered", 0):
            calls.say(f"the {kind} kind answered billed Stops whose CDRs its database does "
                      f"not hold")
            status = 1
    if results.get("billing_check") and not results["billing_check"]["ok"]:
        calls.say("BILLING CHECK FAILED: " + "; ".join(results["billing_check"]["problems"]))
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
