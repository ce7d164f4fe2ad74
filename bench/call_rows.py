"""What the call path's rows cost at the least: the service's data model
written with one plain statement a packet, beside the floor and the
service itself, on one database, in rounds taken in turn.

A call is six packets (stage 1, stage 2, two Starts, two Stops), played
by one process on one connection per kind, without FreeRADIUS:

- floor: what bench/floor_hook.py does: each Access-Request one SELECT of
  the card by number, each accounting record one INSERT ... ON CONFLICT DO
  NOTHING into the floor's table (bench_floor.record).
- rows: the rows the service keeps for a call, in the service's own
  tables with their indexes and constraints, one statement a packet and
  no rule: stage 1 reads the card and keeps the call's login (call_login);
  stage 2 reads the card and places the hold (reservation); each Start
  inserts its leg (call_leg), the billed one making the hold live; the
  other leg's Stop stops its leg; the billed Stop stops its leg, removes
  the hold and writes the CDR, the ledger entry and the card's balance.
  No PIN, no rating, no flags, no repeats or reused ids, no lock on the
  card: the least any design on these tables writes for a call, not a
  call path (the prices are constants). The statements are
  bench/rows_statements.py's, prepared once a connection as the service's
  are (before 2026-12-03 they were sent as text, and planned each time);
  bench/floor.py's rows workers run the same ones inside FreeRADIUS.
- priced: the rows priced as the service's architecture prices them, by
  bench/floor.py's priced hook (bench/priced_hook.py, called here with a
  stand-in `radiusd` and the service's pairs): two statements at stage 2
  and at the billed Stop with the rating engine between them, on the
  hook's own connection.
- service: the call path itself (kondge_billing.edge.radius_edge, as
  bench/profile_calls.py plays it).

Each round reports, a call: the CPU of the PostgreSQL backend serving it,
of the whole cluster (the WAL writer, the checkpointer and autovacuum
too), the client's CPU (Python and psycopg2), the WAL written and the wall
time. The rows kind's stage 1 commits without waiting for the flush, as
the service's does (a connection of its own with synchronous_commit off);
every other write commits durably in every kind.

    .venv/bin/python bench/call_rows.py [--rounds 3] [--calls 1000] [--cards 100000]

On a cluster of its own (var/bench-rows, port 5491) with the bench data
set (bench/calls.py's loader). Writes var/bench/call_rows.txt (and .json). Timings are floats, never money.
"""

import argparse
import importlib
import os
import statistics
import sys
import time
import types
from pathlib import Path

HOME = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HOME))

import psycopg2  # noqa: E402

from bench import calls as bench_calls  # noqa: E402
from bench import floor as bench_floor  # noqa: E402
from bench import profile_calls  # noqa: E402
from bench.rows_statements import (BILLED_START, BILLED_STOP, ROWS_CHARGE,  # noqa: E402
                                   ROWS_PRICES, STAGE1, STAGE2, START, STOP)
from kondge_billing.operations import stack  # noqa: E402
from kondge_billing.store.db import Database  # noqa: E402

VAR = HOME / "var" / "bench-rows"
OUT = HOME / "var" / "bench"
PG_PORT = 5491
KINDS = ("floor", "rows", "priced", "service")
#: the tables a call writes, whose row changes a call are counted
TABLES = ("card", "call_login", "reservation", "call_leg", "cdr", "ledger_entry", "record")

#: the floor's own table (bench/floor.py), made if it is not there
RECORD_TABLE = bench_floor.FLOOR_TABLE.replace("CREATE SCHEMA ", "CREATE SCHEMA IF NOT EXISTS ")\
    .replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ")

FLOOR_SELECT = "SELECT balance FROM kondge.card WHERE number = %(number)s"
FLOOR_INSERT = ("INSERT INTO bench_floor.record (call_id, leg, status) "
                "VALUES (%(call)s, %(leg)s, %(status)s) ON CONFLICT DO NOTHING")


PACKETS = ("stage1", "stage2", "start answer", "start originate", "stop originate",
           "stop answer")


def rows_packets(cur, login_cur, values: dict) -> list:
    """One call of the rows kind: six statements, one a packet, in the order
    of PACKETS (each a function of no argument)."""
    values = dict({"key": values["call"]}, **values)

    def one(c, statement, extra=None, fetch=False):
        def run():
            statement.run(c, dict(values, **(extra or {})))
            if fetch:
                c.fetchone()
        return run
    return [one(login_cur, STAGE1, fetch=True), one(cur, STAGE2, ROWS_PRICES, fetch=True),
            one(cur, START, {"leg": "answer", "called": values["access"]}),
            one(cur, BILLED_START, {"leg": "originate", "called": values["dest"]}),
            one(cur, BILLED_STOP, dict(ROWS_CHARGE, leg="originate", seconds=60,
                                       digest=values["call"] + "o")),
            one(cur, STOP, {"leg": "answer", "seconds": 80,
                                 "digest": values["call"] + "a"})]


def floor_packets(cur, values: dict) -> list:
    def select():
        cur.execute(FLOOR_SELECT, values)
        cur.fetchone()

    def insert(leg, status):
        return lambda: cur.execute(FLOOR_INSERT, dict(values, leg=leg, status=status))
    return [select, select, insert("answer", "Start"), insert("originate", "Start"),
            insert("originate", "Stop"), insert("answer", "Stop")]


def played(who: str, serve, gw, card, pin, dest, n) -> list:
    """One call's packets as the service gets them (profile_calls.call_pairs),
    each a function of no argument that has serve(how, pairs) answer it, and
    stops the bench unless the answer is "ok"."""
    def packet(how, pairs):
        def run():
            result = serve(how, pairs)
            if result != "ok":
                raise SystemExit(f"the {who} answered {result} for card {card}")
        return run
    return [packet(how, pairs) for _kind, how, pairs
            in profile_calls.call_pairs(gw, card, pin, dest, n)]


def service_packets(billing, gw, card, pin, dest, n) -> list:
    log = lambda *_a: None  # noqa: E731
    return played("service", lambda how, pairs: (
        profile_calls.handle_authorize(billing, pairs, log)[0] if how == "auth"
        else profile_calls.handle_accounting(billing, pairs, log)), gw, card, pin, dest, n)


def stand_in_radiusd() -> types.ModuleType:
    """A stand-in for FreeRADIUS's `radiusd` module: the codes a bench hook returns."""
    radiusd = types.ModuleType("radiusd")
    radiusd.RLM_MODULE_REJECT, radiusd.RLM_MODULE_FAIL, radiusd.RLM_MODULE_OK = 0, 1, 2
    return radiusd


def priced_hook(dsn: str):
    """bench/priced_hook.py, loaded as rlm_python3 would load it, on `dsn`,
    with a stand-in `radiusd` (unless one is loaded already)."""
    sys.modules.setdefault("radiusd", stand_in_radiusd())
    sys.path.insert(0, str(HOME / "bench"))
    os.environ["KONDGE_FLOOR_DSN"] = dsn
    return importlib.import_module("priced_hook")


def priced_packets(hook, gw, card, pin, dest, n) -> list:
    def serve(how, pairs):
        answer = hook.authorize(pairs) if how == "auth" else hook.accounting(pairs)
        code = answer[0] if isinstance(answer, tuple) else answer
        return "ok" if code == hook.radiusd.RLM_MODULE_OK else f"code {code}"
    return played("priced hook", serve, gw, card, pin, dest, n)


def _on(conn, sql: str):
    with conn.cursor() as cur:
        cur.execute(sql)


def backend_pid(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="rounds of each kind (default 3)")
    p.add_argument("--calls", type=int, default=1000, help="calls a round (default 1000)")
    p.add_argument("--cards", type=int, default=100000)
    p.add_argument("--prefixes", type=int, default=100000)
    args = p.parse_args(argv)
    if args.rounds < 1 or args.calls < 1:
        p.error("--rounds and --calls must be at least 1")
    b = profile_calls.fresh_var(VAR, PG_PORT, args.cards, args.prefixes)
    s, card_list, gws, dests = b.s, b.card_list, b.gws, b.dests
    results = []
    try:
        su = profile_calls.load(b)
        admin = psycopg2.connect(su)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(RECORD_TABLE)
            cur.execute("SELECT address::text, id FROM kondge.gateway")
            gw_ids = {host.split("/")[0]: gid for host, gid in cur.fetchall()}

        def wal() -> int:
            with admin.cursor() as cur:
                cur.execute("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")
                return int(cur.fetchone()[0])

        # each kind's connections, held for the whole run as a hook holds its one
        plain = psycopg2.connect(su)
        plain.autocommit = True
        login = psycopg2.connect(su, options="-c synchronous_commit=off")
        login.autocommit = True
        db = Database(s.dsn, s.db_timeout_ms, deadline_ms=s.db_timeout_ms + 500,
                      one_connection=True)
        billing = profile_calls.make_billing(s, db)
        priced = priced_hook(su)
        untimed = types.SimpleNamespace(seconds=0.0, count=0)
        service_pid = db.run(lambda cur: (cur.execute("SELECT pg_backend_pid()"),
                                          cur.fetchone())[1])["pg_backend_pid"]
        pids = {"floor": [backend_pid(plain)], "rows": [backend_pid(plain), backend_pid(login)],
                "service": [service_pid]}
        offset = 0

        def calls(kind: str, count: int, first: int) -> list:
            """The packets of `count` calls, as six lists (one a packet type)."""
            made = []
            for i in range(first, first + count):
                card, pin = card_list[i % len(card_list)]
                gw, dest = gws[i % len(gws)][0], dests[i % len(dests)]
                if kind == "service":
                    made.append(service_packets(billing, gw, card, pin, dest, i))
                    continue
                if kind == "priced":
                    made.append(priced_packets(priced, gw, card, pin, dest, i))
                    continue
                conf = f"{kind[0].upper()}{i:07X} 0F4411D6 AB5591F0 CBF3D765"
                values = {"number": card, "gw": gw_ids[gw], "call": conf, "sess": conf[-8:],
                          "caller": "15550001111", "dest": dest, "access": "18005550100"}
                made.append(floor_packets(plain_cur, values) if kind == "floor"
                            else rows_packets(plain_cur, login_cur, values))
            return list(zip(*made))

        flushes = {"floor": lambda sql: plain_cur.execute(sql),
                   "rows": lambda sql: (plain_cur.execute(sql), login_cur.execute(sql)),
                   "priced": lambda sql: _on(priced.rows_hook._held.conn, sql),
                   "service": lambda sql: db.run(lambda cur: cur.execute(sql))}

        def row_changes(kind: str) -> dict:
            """{table: [inserted, updated, of which HOT, deleted]} so far, the
            statistics of the kind's connections flushed first."""
            flushes[kind]("SELECT pg_stat_force_next_flush()")
            time.sleep(0.05)
            with admin.cursor() as cur:
                cur.execute("SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del "
                            "FROM pg_stat_user_tables WHERE relname = ANY (%s)",
                            (list(TABLES),))
                return {r[0]: list(r[1:]) for r in cur.fetchall()}

        def measure(kind: str) -> tuple:
            return (sum(bench_calls.proc_cpu(p) for p in bench_calls.postgres_pids(s)),
                    sum(bench_calls.proc_cpu(p) for p in pids[kind]), wal(),
                    time.process_time(), time.perf_counter())

        plain_cur, login_cur = plain.cursor(), login.cursor()
        bench_calls.say("warming up (200 calls of each kind)")
        for kind in KINDS:
            for packets in calls(kind, 200, offset):
                for run in packets:
                    run()
            offset += 200
        pids["priced"] = [backend_pid(priced.rows_hook._held.conn)]
        # each packet type of a round's calls is played in turn (all the
        # stage 1s, then all the stage 2s, ...: each call's packets keep
        # their order), so that the CPU of each type is read on its own
        for n in range(args.rounds):
            order = KINDS[n % len(KINDS):] + KINDS[:n % len(KINDS)]
            for kind in order:
                per_packet = {}
                changes = row_changes(kind)
                for name, packets in zip(PACKETS, calls(kind, args.calls, offset)):
                    before = measure(kind)
                    for run in packets:
                        run()
                    d = [b - a for a, b in zip(before, measure(kind))]
                    per_packet[name] = d
                offset += args.calls
                after = row_changes(kind)
                rows = {t: [round((b - a) / args.calls, 2) for a, b in zip(changes[t], after[t])]
                        for t in TABLES if t in after and t in changes}
                d = [sum(v[k] for v in per_packet.values()) for k in range(5)]
                r = {"round": n + 1, "kind": kind, "calls": args.calls,
                     "backend_cpu_ms": round(1000 * d[1] / args.calls, 3),
                     "cluster_cpu_ms": round(1000 * d[0] / args.calls, 3),
                     "client_cpu_ms": round(1000 * d[3] / args.calls, 3),
                     "wal_bytes": round(d[2] / args.calls),
                     "wall_ms": round(1000 * d[4] / args.calls, 3),
                     "row_changes": rows,
                     "per_packet": {k: {"cluster_cpu_ms": round(1000 * v[0] / args.calls, 3),
                                        "backend_cpu_ms": round(1000 * v[1] / args.calls, 3),
                                        "client_cpu_ms": round(1000 * v[3] / args.calls, 3),
                                        "wal_bytes": round(v[2] / args.calls)}
                                    for k, v in per_packet.items()}}
                results.append(r)
                bench_calls.say(f"round {n + 1} {kind}: backend {r['backend_cpu_ms']} ms, "
                                f"cluster {r['cluster_cpu_ms']} ms, client {r['client_cpu_ms']} "
                                f"ms, WAL {r['wal_bytes']} B, wall {r['wall_ms']} ms a call")
        plain_cur.close()
        login_cur.close()
        db.close()
        plain.close()
        login.close()
        admin.close()
    finally:
        stack.stop_postgres(s)
    report = {"rounds": results, "calls": args.calls, "cards": args.cards,
              "median": {}}
    lines = [f"bench/call_rows.py: {args.rounds} rounds of {args.calls} calls of each kind, "
             f"one process, {args.cards} cards; a call's CPU (ms) and WAL",
             "", "round  kind      backend  cluster   client  client+cluster      WAL    wall"]
    for r in results:
        lines.append(f"{r['round']:>5}  {r['kind']:<8} {r['backend_cpu_ms']:>8} "
                     f"{r['cluster_cpu_ms']:>8} {r['client_cpu_ms']:>8} "
                     f"{r['client_cpu_ms'] + r['cluster_cpu_ms']:>15.3f} {r['wal_bytes']:>8} "
                     f"{r['wall_ms']:>7}")
    lines += ["", "medians, and as a multiple of the floor's:"]
    floor = None
    for kind in KINDS:
        mine = [r for r in results if r["kind"] == kind]
        med = {k: statistics.median_high(r[k] for r in mine)
               for k in ("backend_cpu_ms", "cluster_cpu_ms", "client_cpu_ms", "wal_bytes")}
        med["total_cpu_ms"] = round(med["cluster_cpu_ms"] + med["client_cpu_ms"], 3)
        report["median"][kind] = med
        floor = floor or med
        lines.append(f"  {kind:<8} cluster {med['cluster_cpu_ms']} ms "
                     f"(x{med['cluster_cpu_ms'] / floor['cluster_cpu_ms']:.2f}), client "
                     f"{med['client_cpu_ms']} ms (x{med['client_cpu_ms'] / floor['client_cpu_ms']:.2f}),"
                     f" both {med['total_cpu_ms']} ms "
                     f"(x{med['total_cpu_ms'] / floor['total_cpu_ms']:.2f}), WAL {med['wal_bytes']} B "
                     f"(x{med['wal_bytes'] / max(floor['wal_bytes'], 1):.2f})")
    lines += ["", "a packet's CPU, client and cluster (in parentheses: the kind's own backends, "
              "of the cluster's) (ms), and WAL (B), medians of the rounds:",
              "  packet           " + "".join(f"{k:>32}" for k in KINDS)]
    for name in PACKETS:
        cells = []
        for kind in KINDS:
            mine = [r["per_packet"][name] for r in results if r["kind"] == kind]
            med = {k: statistics.median_high(m[k] for m in mine)
                   for k in ("cluster_cpu_ms", "backend_cpu_ms", "client_cpu_ms", "wal_bytes")}
            report.setdefault("per_packet_median", {}).setdefault(kind, {})[name] = med
            cells.append(f"{med['client_cpu_ms']:.3f} + {med['cluster_cpu_ms']:.3f} "
                         f"({med['backend_cpu_ms']:.3f}), "
                         f"{med['wal_bytes']:>5}")
        lines.append(f"  {name:<16} " + "".join(f"{c:>32}" for c in cells))
    lines += ["", "row changes a call (the last round of each kind): table inserted/updated"
              "(of which HOT)/deleted"]
    for kind in KINDS:
        last = [r for r in results if r["kind"] == kind][-1]["row_changes"]
        lines.append(f"  {kind:<8} " + ", ".join(
            f"{t} {v[0]:g}/{v[1]:g}({v[2]:g})/{v[3]:g}" for t, v in last.items() if any(v)))
    bench_calls.write_results(OUT, "call_rows", lines, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
