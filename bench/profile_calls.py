"""Where a call's time goes, without FreeRADIUS: the call path called directly.

On a cluster of its own (var/bench-profile, port 5495) with the bench data
set (bench/calls.py's loader), one thread plays complete calls through
kondge_billing.edge.radius_edge (what the hook calls, with the pairs FreeRADIUS
hands it) one packet at a time, and reports:

  - the wall time per packet type (p50/p99), the time inside the database
    round trips (cursor.execute + fetch) and the statements per packet;
  - PostgreSQL's CPU per call (all of the cluster's processes, and the one
    backend serving the calls; from /proc, 10 ms ticks);
  - PostgreSQL's own time per server-side function (track_functions = all:
    rating_context, radius_hold, radius_account, radius_settle, ...);
  - EXPLAIN ANALYZE of CALL_LOOKUP, and auto_explain of the statements
    inside the radius_* functions;
  - a cProfile of the Python side, top functions by own time;
  - with --statements, pg_stat_statements (track = all, track_planning) over
    the profiled calls: each statement, nested ones too, a call: how often
    it ran, how often PostgreSQL planned it, and its planning and execution
    time (a statement planned at every call shows plans = calls); it costs
    the cluster a restart and some CPU a statement, so it is off by default;
  - with --rounds N, N more rounds of --round-calls calls each, on a
    connection held as the hook holds it, without the profiler: the
    Python CPU, the backend's CPU, the WAL and the wall time a call in
    each round (flat, if the cost of a call does not grow with the calls
    played); with --alternate FILE,..., odd rounds run with those SQL
    function files applied and even rounds with the tree's own, so that
    two versions of a function are compared in one run.

Writes var/bench/profile.txt (and .json). Timings are floats, never money.

    .venv/bin/python bench/profile_calls.py [--calls 1000] [--cards 100000]
        [--statements] [--rounds 6 --round-calls 1000 [--alternate old/post_ledger.sql]]
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import sys
import time
import types
from datetime import datetime, timezone
from pathlib import Path

HOME = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HOME))

import psycopg2  # noqa: E402
import psycopg2.extras  # noqa: E402

from bench import calls as bench_calls  # noqa: E402
from bench import loadgen  # noqa: E402
from kondge_billing.store import cards  # noqa: E402
from kondge_billing import config  # noqa: E402
from kondge_billing.operations import stack  # noqa: E402
from kondge_billing.store.db import Database  # noqa: E402
from kondge_billing.edge.radius_edge import handle_accounting, handle_authorize  # noqa: E402
from kondge_billing.calls.service import Billing  # noqa: E402

VAR = HOME / "var" / "bench-profile"
OUT = HOME / "var" / "bench"
PG_PORT = 5495


class Timed:
    """Counts and times every statement a cursor runs (wraps Database.run):
    its execute, and with `fetch` its fetchone too, on `clock` (wall time by
    default; time.thread_time for the thread's CPU)."""

    def __init__(self, db: Database, clock=time.perf_counter, fetch: bool = False):
        self.db, self.count, self.seconds = db, 0, 0.0
        inner = db.run

        def timing(method, counted):
            def wrapped(*a, **k):
                t = clock()
                try:
                    return method(*a, **k)
                finally:
                    self.seconds += clock() - t
                    self.count += counted
            return wrapped

        def run(work):
            def timed(cur):
                cur.execute = timing(cur.execute, 1)
                if fetch:
                    cur.fetchone = timing(cur.fetchone, 0)
                return work(cur)
            return inner(timed)
        db.run = run


def call_pairs(gw, card, pin, destination, n):
    conf = f"h323-conf-id=BE{n:06X} 0F4411D6 AB5591F0 CBF3D765"
    base = [("User-Name", card), ("Calling-Station-Id", loadgen.CALLER),
            ("h323-conf-id", conf), ("Kondge-Gateway-Address", gw)]
    auth = lambda called: tuple(base + [("User-Password", pin),  # noqa: E731
                                        ("Called-Station-Id", called)])

    def acct(status, leg, seconds=None):
        pairs = base + [("Acct-Status-Type", status), ("Acct-Session-Id", conf[-8:]),
                        ("Called-Station-Id", destination if leg == "originate"
                         else loadgen.ACCESS_NUMBER),
                        ("h323-call-origin", f"h323-call-origin={leg}"), ("Acct-Delay-Time", "0")]
        if seconds is not None:
            pairs.append(("Acct-Session-Time", str(seconds)))
        return tuple(pairs)
    return [("stage1", "auth", auth(loadgen.ACCESS_NUMBER)), ("stage2", "auth", auth(destination)),
            ("start", "acct", acct("Start", "answer")), ("start", "acct", acct("Start", "originate")),
            ("stop", "acct", acct("Stop", "originate", 60)), ("stop", "acct", acct("Stop", "answer", 80))]


def play(billing, timed, gws, card_list, dests, count, offset=0):
    per_type = {t: [] for t in loadgen.PACKET_TYPES}
    db_time = {t: 0.0 for t in loadgen.PACKET_TYPES}
    statements = {t: 0 for t in loadgen.PACKET_TYPES}
    log = lambda *_a: None  # noqa: E731
    for i in range(offset, offset + count):
        card, pin = card_list[i % len(card_list)]
        for kind, how, pairs in call_pairs(gws[i % len(gws)][0], card, pin,
                                           dests[i % len(dests)], i):
            s0, c0 = timed.seconds, timed.count
            t = time.perf_counter()
            if how == "auth":
                result = handle_authorize(billing, pairs, log)[0]
            else:
                result = handle_accounting(billing, pairs, log)
            per_type[kind].append(time.perf_counter() - t)
            db_time[kind] += timed.seconds - s0
            statements[kind] += timed.count - c0
            if result != "ok":
                raise SystemExit(f"{kind} answered {result} for card {card}")
    return per_type, db_time, statements


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * (len(values) - 1)))] * 1000.0


def explain(dsn: str, gw_id: int, card: str, dest: str) -> str:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    out = []
    at = datetime.now(timezone.utc)
    with conn.cursor() as cur:
        params = {"number": card, "pin_hash": None, "caller_number": None, "called": dest,
                  "caller": loadgen.CALLER, "gateway_id": gw_id, "conf_id": "x",
                  "call_id": "x", "stage": "destination", "at": at}
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + cards.CALL_LOOKUP.text, params)
        out += ["== CALL_LOOKUP (stage 2)"] + [r[0] for r in cur.fetchall()]
    conn.close()
    return "\n".join(out)


def function_times(superuser_dsn_kondge: str) -> list:
    conn = psycopg2.connect(superuser_dsn_kondge)
    with conn.cursor() as cur:
        cur.execute("""SELECT funcname, calls, round(total_time::numeric, 1)::text,
                              round(self_time::numeric, 1)::text,
                              round((total_time / greatest(calls, 1))::numeric, 3)::text
                         FROM pg_stat_user_functions ORDER BY total_time DESC""")
        rows = cur.fetchall()
    conn.close()
    return rows


def auto_explained(s, gw, card, pin, dest) -> str:
    """auto_explain of every statement (nested ones too) of one call, as PostgreSQL ran them."""
    log = s.pg_data.parent / "postgres.log"
    offset = log.stat().st_size
    su = stack.superuser_dsn(s).replace("dbname=postgres", "dbname=kondge")
    settings = {"session_preload_libraries": "'auto_explain'", "auto_explain.log_min_duration": "0",
                "auto_explain.log_analyze": "on", "auto_explain.log_nested_statements": "on"}
    as_superuser(su, *[f"ALTER DATABASE kondge SET {k} = {v}" for k, v in settings.items()])
    db = Database(s.dsn)
    billing = make_billing(s, db)
    for _kind, how, pairs in call_pairs(gw, card, pin, dest, 999999):
        (handle_authorize if how == "auth" else handle_accounting)(billing, pairs, lambda *a: None)
    db.close()
    as_superuser(su, *[f"ALTER DATABASE kondge RESET {k}" for k in settings])
    with open(log, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def track_statements(s, su_dsn: str):
    """pg_stat_statements on the bench's cluster, nested statements and
    planning included (a restart: shared_preload_libraries)."""
    as_superuser(su_dsn, "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    stack.stop_postgres(s)
    stack.start_postgres(s)
    as_superuser(su_dsn, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
                 "ALTER SYSTEM SET pg_stat_statements.track = 'all'",
                 "ALTER SYSTEM SET pg_stat_statements.track_planning = on",
                 "SELECT pg_reload_conf()")
    time.sleep(0.5)


def statements_read(su_dsn: str) -> list:
    """pg_stat_statements' rows of the kondge database: calls, plans, total
    plan and execution ms, text."""
    conn = psycopg2.connect(su_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("""SELECT s.calls, s.plans, s.total_plan_time, s.total_exec_time, s.query
                             FROM pg_stat_statements s
                             JOIN pg_database d ON d.oid = s.dbid AND d.datname = 'kondge'
                            WHERE s.query NOT LIKE '%pg_stat_statements%'""")
            return [{"calls": r[0], "plans": r[1], "plan_ms": r[2], "exec_ms": r[3],
                     "query": r[4]} for r in cur.fetchall()]
    finally:
        conn.close()


def statement_lines(rows: list, calls: int, top: int = 30) -> list:
    """The statements by time a call (planning and execution), the costliest
    first: runs, plans and µs a call, and the statement's first 100
    characters on one line. Nested statements are inside their caller's
    execution time too."""
    lines = [f"{'runs':>6} {'plans':>6} {'plan us':>8} {'exec us':>8}  statement (a call; "
             f"{calls} calls)"]
    ranked = sorted(rows, key=lambda r: r["plan_ms"] + r["exec_ms"], reverse=True)
    for r in ranked[:top]:
        text = " ".join(r["query"].split())[:100]
        lines.append(f"{r['calls'] / calls:>6.2f} {r['plans'] / calls:>6.2f} "
                     f"{1000 * r['plan_ms'] / calls:>8.1f} {1000 * r['exec_ms'] / calls:>8.1f}"
                     f"  {text}")
    return lines


def postgres_cpu(s, backend_pid: int) -> tuple[float, float]:
    """CPU seconds used so far by the cluster's processes, and by one backend."""
    return (sum(bench_calls.proc_cpu(p) for p in bench_calls.postgres_pids(s)),
            bench_calls.proc_cpu(backend_pid))


def as_superuser(dsn: str, *statements: str):
    """The statements in turn on a connection of their own, each on its own
    (outside a transaction)."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def apply_sql(dsn: str, path: Path):
    as_superuser(dsn, path.read_text())


class FileBarrier:
    """Rounds begun together with other bench processes (bench/ab.py): at
    round n each party leaves a file in `directory` and waits until all
    `parties` have, so that two trees measured side by side share the
    machine's moods round by round."""

    def __init__(self, directory: Path | None, parties: int = 2, timeout: float = 900.0,
                 name: str | None = None):
        self.directory, self.parties, self.timeout = directory, parties, timeout
        self.name = name or str(os.getpid())

    def wait(self, n: int):
        if self.directory is None:
            return
        (self.directory / f"{self.name}.{n}").touch()
        deadline = time.monotonic() + self.timeout
        while len(list(self.directory.glob(f"*.{n}"))) < self.parties:
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: the other party never reached round {n} "
                                 f"({self.directory})")
            time.sleep(0.01)


def rounds(s, su_dsn, billing_db_dsn, gws, card_list, dests, count, calls, alternate,
           offset, barrier: FileBarrier | None = None) -> list:
    """`count` rounds of `calls` calls without the profiler, on one connection
    held as the hook holds it: each round's CPU, WAL and wall time a call."""
    barrier = barrier or FileBarrier(None)
    if not count:
        return []
    db = Database(billing_db_dsn, s.db_timeout_ms, deadline_ms=s.db_timeout_ms + 500,
                  one_connection=True)
    billing = make_billing(s, db)
    untimed = types.SimpleNamespace(seconds=0.0, count=0)     # statements not timed
    backend = db.run(lambda cur: (cur.execute("SELECT pg_backend_pid()"), cur.fetchone())[1])
    conn = psycopg2.connect(su_dsn)
    conn.autocommit = True

    def wal() -> int:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")
            return int(cur.fetchone()[0])
    results = []
    try:
        for n in range(count):
            label = "tree"
            if alternate:
                label = "alternate" if n % 2 else "tree"
                for path in alternate:
                    apply_sql(su_dsn, path if n % 2 else HOME / "sql" / "functions" / path.name)
                # the functions compiled afresh before the round is timed
                play(billing, untimed, gws, card_list, dests, 20, offset=offset)
                offset += 20
            barrier.wait(n)
            cpu, w, t, py = (postgres_cpu(s, backend["pg_backend_pid"]), wal(),
                             time.perf_counter(), time.process_time())
            play(billing, untimed, gws, card_list, dests, calls, offset=offset)
            offset += calls
            py, t = time.process_time() - py, time.perf_counter() - t
            cpu2, w2 = postgres_cpu(s, backend["pg_backend_pid"]), wal()
            results.append({"round": n + 1, "functions": label, "calls": calls,
                            "python_cpu_ms": round(1000 * py / calls, 3),
                            "backend_cpu_ms": round(1000 * (cpu2[1] - cpu[1]) / calls, 3),
                            "wal_bytes": round((w2 - w) / calls),
                            "wall_ms": round(1000 * t / calls, 3)})
            r = results[-1]
            bench_calls.say(f"round {r['round']} ({label}): Python {r['python_cpu_ms']} ms, "
                            f"PostgreSQL backend {r['backend_cpu_ms']} ms, WAL {r['wal_bytes']} "
                            f"bytes, wall {r['wall_ms']} ms a call")
    finally:
        conn.close()
        db.close()
        if alternate:
            for path in alternate:
                apply_sql(su_dsn, HOME / "sql" / "functions" / path.name)
    return results


def fresh_var(var: Path, port: int, cards: int, prefixes: int) -> types.SimpleNamespace:
    """A bench's own folder made afresh (its cluster, if one runs there,
    stopped first) with a PIN key of its own, and the bench data set for it
    (bench/calls.py's): env, s (settings), card_list, gws, dests."""
    if var.exists():
        stack.stop_postgres(config.load(bench_calls.bench_env(var, port)))
        shutil.rmtree(var)
    var.mkdir(parents=True)
    (var / "pin.key").write_text(os.urandom(32).hex())
    (var / "pin.key").chmod(0o600)
    env = bench_calls.bench_env(var, port)
    return types.SimpleNamespace(
        env=env, s=config.load(env), card_list=bench_calls.card_list(cards),
        gws=bench_calls.gateway_list(), dests=bench_calls.destinations(prefixes),
        prefixes=prefixes)


def load(b: types.SimpleNamespace) -> str:
    """The bench's cluster started afresh and the data set loaded; the
    superuser's DSN to the kondge database."""
    bench_calls.fresh_database(b.s)
    bench_calls.load_dataset(b.s, b.env, b.card_list, b.gws, b.prefixes)
    return stack.superuser_dsn(b.s).replace("dbname=postgres", "dbname=kondge")


def make_billing(s, db):
    return Billing.from_settings(s, db)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=1000)
    p.add_argument("--cards", type=int, default=100000)
    p.add_argument("--prefixes", type=int, default=100000)
    p.add_argument("--rounds", type=int, default=0,
                   help="rounds played after the profile, without it (default: none)")
    p.add_argument("--round-calls", type=int, default=1000, help="calls a round")
    p.add_argument("--statements", action="store_true",
                   help="pg_stat_statements over the profiled calls (restarts the bench's "
                        "cluster with it; nested statements and planning counted)")
    p.add_argument("--alternate", default="",
                   help="SQL function files (comma-separated) applied before the odd rounds; "
                        "the tree's files of the same names before the even ones")
    p.add_argument("--port", type=int, default=PG_PORT,
                   help=f"the bench cluster's port (default {PG_PORT})")
    p.add_argument("--var", type=Path, default=VAR,
                   help="the bench's own folder, made afresh (default var/bench-profile)")
    p.add_argument("--out", type=Path, default=OUT,
                   help="where profile.txt and profile.json go (default var/bench)")
    p.add_argument("--barrier", type=Path, default=None,
                   help="a folder shared with another bench process (bench/ab.py): each "
                        "round begins when both have reached it")
    args = p.parse_args(argv)
    alternate = [Path(f) for f in args.alternate.split(",") if f]
    for path in alternate:
        if not path.is_file() or not (HOME / "sql" / "functions" / path.name).is_file():
            p.error(f"--alternate: {path} is not a file named as one of sql/functions/*.sql")
    b = fresh_var(args.var, args.port, args.cards, args.prefixes)
    s, card_list, gws, dests = b.s, b.card_list, b.gws, b.dests
    report = {}
    try:
        su_kondge = load(b)
        if args.statements:
            track_statements(s, su_kondge)
        conn = psycopg2.connect(su_kondge)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("ALTER DATABASE kondge SET track_functions = 'all'")
            cur.execute("SELECT id FROM kondge.gateway WHERE address = %s", (gws[0][0],))
            gw_id = cur.fetchone()[0]
        conn.close()
        db = Database(s.dsn)
        timed = Timed(db)
        billing = make_billing(s, db)
        bench_calls.say("warming up (200 calls)")
        play(billing, timed, gws, card_list, dests, 200, offset=args.calls)
        as_superuser(su_kondge, "SELECT pg_stat_reset()",
                     *(["SELECT pg_stat_statements_reset()"] if args.statements else []))
        time.sleep(0.6)                          # stats are flushed at most every 500 ms
        backend = db.run(lambda cur: (cur.execute("SELECT pg_backend_pid()"), cur.fetchone())[1])
        timed.seconds, timed.count = 0.0, 0
        bench_calls.say(f"playing {args.calls} calls, one packet at a time, under cProfile")
        prof = cProfile.Profile()
        cpu = postgres_cpu(s, backend["pg_backend_pid"])
        t = time.perf_counter()
        prof.enable()
        per_type, db_time, statements = play(billing, timed, gws, card_list, dests, args.calls)
        prof.disable()
        wall = time.perf_counter() - t
        cpu = [1000.0 * (b - a) / args.calls for a, b in zip(cpu, postgres_cpu(s, backend["pg_backend_pid"]))]
        if args.statements:
            report["statements"] = statements_read(su_kondge)
        db.close()
        report["rounds"] = rounds(s, su_kondge, billing_db_dsn=s.dsn, gws=gws,
                                  card_list=card_list, dests=dests, count=args.rounds,
                                  calls=args.round_calls, alternate=alternate,
                                  offset=args.calls + 200, barrier=FileBarrier(args.barrier))
        time.sleep(0.6)
        report["per_packet"] = {
            k: {"p50_ms": round(pct(v, 0.5), 3), "p99_ms": round(pct(v, 0.99), 3),
                "mean_ms": round(1000 * sum(v) / len(v), 3),
                "db_share_percent": round(100 * db_time[k] / sum(v)),
                "statements_per_packet": round(statements[k] / len(v), 2)}
            for k, v in per_type.items()}
        report["calls_per_second_one_thread"] = round(args.calls / wall, 1)
        report["postgres_cpu_ms_per_call"] = {"all_processes": round(cpu[0], 2),
                                              "call_path_backend": round(cpu[1], 2)}
        report["functions"] = function_times(su_kondge)
        stream = io.StringIO()
        pstats.Stats(prof, stream=stream).sort_stats("tottime").print_stats(25)
        report["cprofile_top"] = stream.getvalue()
        stream = io.StringIO()
        pstats.Stats(prof, stream=stream).sort_stats("cumulative").print_stats(40)
        report["cprofile_cumulative"] = stream.getvalue()
        stream = io.StringIO()
        pstats.Stats(prof, stream=stream).sort_stats("ncalls").print_stats(40)
        report["cprofile_calls"] = stream.getvalue()
        report["explain"] = explain(s.dsn, gw_id, card_list[5][0], dests[5])
        report["auto_explain"] = auto_explained(s, gws[1][0], card_list[7][0], card_list[7][1],
                                                dests[7])
    finally:
        stack.stop_postgres(s)
    lines = [f"bench/profile_calls.py: {args.calls} calls through radius_edge, one thread, "
             f"{args.cards} cards, {args.prefixes} prefixes: "
             f"{report['calls_per_second_one_thread']} calls/s (6 packets each, cProfile on)",
             f"PostgreSQL CPU per call: {report['postgres_cpu_ms_per_call']['all_processes']} ms "
             f"(its call-path backend {report['postgres_cpu_ms_per_call']['call_path_backend']} ms)",
             "", f"{'packet':<8} {'p50 ms':>7} {'p99 ms':>7} {'mean ms':>8} {'db %':>5} "
                 f"{'statements':>10}"]
    for k, v in report["per_packet"].items():
        lines.append(f"{k:<8} {v['p50_ms']:>7} {v['p99_ms']:>7} {v['mean_ms']:>8} "
                     f"{v['db_share_percent']:>5} {v['statements_per_packet']:>10}")
    if report["rounds"]:
        lines += ["", "rounds without the profiler, a call: Python CPU, PostgreSQL backend CPU, "
                      "WAL bytes, wall"]
        lines += [f"  round {r['round']:>2} ({r['functions']}): {r['python_cpu_ms']} ms, "
                  f"{r['backend_cpu_ms']} ms, {r['wal_bytes']} B, {r['wall_ms']} ms"
                  for r in report["rounds"]]
    lines += ["", "PostgreSQL functions (track_functions): name, calls, total ms, self ms, "
              "ms per call"]
    lines += ["  " + "  ".join(str(c) for c in row) for row in report["functions"]]
    if "statements" in report:
        lines += ["", "== pg_stat_statements over the profiled calls (track = all, planning)"]
        lines += statement_lines(report["statements"], args.calls)
    lines += ["", report["explain"], "", "== auto_explain of one call (nested statements)",
              report["auto_explain"], "", "== cProfile, top 25 by own time",
              report["cprofile_top"], "== cProfile, top 40 by cumulative time",
              report["cprofile_cumulative"], "== cProfile, top 40 by calls",
              report["cprofile_calls"]]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "profile.txt").write_text("\n".join(lines) + "\n")
    (args.out / "profile.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print("\n".join(lines[:20 + len(report["rounds"])]))
    print(f"bench: the whole profile in {args.out / 'profile.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
