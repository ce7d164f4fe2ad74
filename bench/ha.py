"""make bench-ha: the HA topology and the backups under faults, measured.

1. failover: `kondge ha up` (var/bench-ha), a generator of complete calls
   at about --rate calls/s whose gateways retry and fail over between the
   two RADIUS sets; the primary node killed (its pg_autoctl keeper and its
   postmaster, SIGKILL): seconds from the kill to the standby's promotion
   and to the first call authorised after it; then every call made billed
   once (CDRs = calls, charges = ledger debits = balance change = the
   tariff's price), and the seconds until the old primary is a standby again;
1b. the primary's postmaster alone killed (SIGKILL; its keeper lives and
   starts it again): whether a failover happened, seconds until PostgreSQL
   serves again and to the first call after the kill, the longest call
   that spanned the kill, and the books;
2. one RADIUS set killed (its supervisor and FreeRADIUS processes,
   SIGKILL) under load: calls that failed, the books;
3. the standby held down: seconds until a write on the primary commits
   again, and the state the monitor reports;
4. restore: a private cluster (var/bench-restore) filled with --cards
   cards and --cdrs call records, a full backup, --after more calls'
   worth of rows, then `kondge restore` timed to the first call answered,
   and a point-in-time restore to a moment between two inserts, checked
   by the rows before and after it.

Results: var/bench/ha.json and var/bench/ha.txt. Not part of make test.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

HOME = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HOME))

from kondge_billing import config  # noqa: E402
from kondge_billing.operations import ha  # noqa: E402
from kondge_billing.store.db import Database  # noqa: E402
from kondge_billing.store.pins import load_key  # noqa: E402
from tests.e2e.test_faults import books, us_cost  # noqa: E402
from tests.support.cards import new_card  # noqa: E402
from tests.support.failover import FailoverClient, kill_node  # noqa: E402
from tests.support.load import Call, LoadResult, one_call  # noqa: E402
from tests.support.waiting import poll  # noqa: E402

KONDGE = [sys.executable, "-m", "kondge_billing.cli"]
OUT = HOME / "var" / "bench"
OPENING = Decimal("1000.00")


def run(env, *args, timeout=1800):
    return subprocess.run(KONDGE + list(args), env=env, cwd=HOME, capture_output=True,
                          text=True, timeout=timeout)


def wait(check, timeout, step=0.05):
    """When check() held (monotonic), or None: a bench reports what it did not see."""
    return poll(check, timeout, step, ignore=Exception)     # a node may be down meanwhile


class Generator:
    """Complete calls at about `rate` a second from `threads` gateways, each
    call's end time recorded."""

    def __init__(self, make_client, cards, rate, threads=24):
        self.make_client, self.cards, self.rate, self.threads = make_client, cards, rate, threads
        self.result = LoadResult()
        self.done = []                       # (monotonic end, call)
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def worker(self, i):
        import random
        rng = random.Random(i)
        client = self.make_client()
        gap = self.threads / self.rate
        try:
            while not self.stop.is_set():
                began = time.monotonic()
                call = Call(self.cards[i % len(self.cards)], "15551230000", rng.randint(1, 300))
                with self.lock:
                    self.result.calls.append(call)
                one_call(client, call, "1234", "18005550100", rng, 0.0, self.result,
                         time.monotonic() + 120)
                with self.lock:
                    self.done.append((began, time.monotonic(), call))
                time.sleep(max(0.0, gap - (time.monotonic() - began)))
        except Exception as exc:  # noqa: BLE001 - reported
            self.result.errors.append(repr(exc))
        finally:
            client.close()

    def __enter__(self):
        self.pool = [threading.Thread(target=self.worker, args=(i,)) for i in range(self.threads)]
        for t in self.pool:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.pool:
            t.join(180)


def gateways(t, numbers, rate) -> Generator:
    """The generator, its gateways listing set-a then set-b."""
    s = t.s
    return Generator(lambda: FailoverClient(("127.0.0.1", "127.0.0.2"), s.auth_port,
                                            s.acct_port, timeout=1.0), numbers, rate)


def settle_books(db_holder, numbers, made, timeout=120):
    wait(lambda: books(db_holder, numbers)["cdrs"] >= len(made), timeout, 0.5)
    b = books(db_holder, numbers)
    expected = sum(us_cost(c.billed) for c in made)
    return {"calls_made": len(made), "cdrs": b["cdrs"], "charges": str(b["charges"]),
            "debits": str(b["debits"]), "expected": str(expected),
            "balanced": (b["cdrs"] == len(made) and b["charges"] == b["debits"] == expected
                         == OPENING * len(numbers) - b["balance"] and b["mismatched"] == 0)}


class Holder:
    def __init__(self, db):
        self.db = db


def first_call_after(gen, moment):
    """The end of the first call begun after `moment`, once one has ended."""
    wait(lambda: any(b > moment for b, _e, _c in list(gen.done)), 120)
    return min((e for b, e, _c in list(gen.done) if b > moment), default=None)


def since(moment, then):
    return round(then - moment, 1) if then else None


def postmaster_killed(args, env, t, holder, key) -> dict:
    """The primary's postmaster alone killed: its keeper starts it again."""
    wait(lambda: ha.both_in_sync(t), 180, 0.5)
    primary = ha.primary_name(t)
    numbers = [new_card(holder.db, key, str(OPENING)) for _ in range(48)]
    with gateways(t, numbers, args.rate) as gen:
        time.sleep(args.warmup)
        rate = len(gen.done) / args.warmup
        old = ha.postmaster_pid(t, primary)
        os.kill(old, signal.SIGKILL)
        killed = time.monotonic()
        serving = wait(lambda: ha.postmaster_pid(t, primary) not in (None, old)
                       and ha.answers(t, primary), 120)
        first_end = first_call_after(gen, killed)
        time.sleep(args.after)
        spanned = [e - b for b, e, _c in list(gen.done) if b < killed < e]
    states = {n["name"]: n["state"] for n in ha.node_states(t)}
    out = {"rate_calls_per_s": round(rate, 1), "primary": primary,
           "primary_after": ha.primary_name(t), "states_after": states,
           "failover": ha.primary_name(t) != primary,
           "postgres_serving_again_after_s": since(killed, serving),
           "first_good_call_after_s": since(killed, first_end),
           "calls_across_the_kill": len(spanned),
           "longest_call_across_the_kill_s": round(max(spanned), 1) if spanned else None,
           "errors": gen.result.errors[:3]}
    out.update(settle_books(holder, numbers, gen.result.made))
    back = wait(lambda: ha.both_in_sync(t), 180, 0.5)
    out["both_in_sync_after_s"] = since(killed, back)
    return out


def failover(args, env, t, holder, key) -> dict:
    wait(lambda: ha.both_in_sync(t), 180, 0.5)
    primary = ha.primary_name(t)
    standby = next(n for n in ha.NODES if n != primary)
    numbers = [new_card(holder.db, key, str(OPENING)) for _ in range(48)]
    with gateways(t, numbers, args.rate) as gen:
        time.sleep(args.warmup)
        rate = len(gen.done) / args.warmup
        kill_node(t, primary)
        killed = time.monotonic()
        promoted = wait(lambda: ha.primary_name(t) == standby, 120)
        first_end = first_call_after(gen, killed)
        rejoined = wait(lambda: {n["name"]: n["state"] for n in ha.node_states(t)}.get(primary)
                        == "secondary", 180, 0.5)
        time.sleep(args.after)
    out = {"rate_calls_per_s": round(rate, 1),
           "promoted_after_s": since(killed, promoted),
           "first_good_call_after_s": since(killed, first_end),
           "old_primary_standby_after_s": since(killed, rejoined),
           "errors": gen.result.errors[:3]}
    out.update(settle_books(holder, numbers, gen.result.made))
    return out


def kill_set(args, env, t, holder, key) -> dict:
    numbers = [new_card(holder.db, key, str(OPENING)) for _ in range(48)]
    with gateways(t, numbers, args.rate) as gen:
        time.sleep(args.warmup)
        var = t.set_var("set-a")
        pids = [int(p.read_text()) for p in [var / "supervisor.pid"] + list(
            (var / "radius").glob("**/*.pid")) if p.exists()]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        killed = time.monotonic()
        time.sleep(args.after)
        after = [c for b, _e, c in list(gen.done) if b > killed]
    out = {"killed_processes": len(pids), "calls_after_kill": len(after),
           "errors": gen.result.errors[:3]}
    out.update(settle_books(holder, numbers, gen.result.made))
    restarted = run(t.set_env("set-a"), "server", "start")
    out["set_a_started_again"] = restarted.returncode == 0
    return out


def standby_gone(args, env, t, holder, key) -> dict:
    standby = next(n["name"] for n in ha.node_states(t) if n["state"] == "secondary")
    primary = next(n["name"] for n in ha.node_states(t) if n["state"] == "primary")
    began = time.monotonic()
    run(env, "ha", "hold", standby)
    held = time.monotonic()
    db = Database(t.dsn("kondge", "owner"), timeout_ms=120000)
    db.run(lambda cur: cur.execute("CREATE TABLE IF NOT EXISTS public.bench_probe (at timestamptz)"))
    db.run(lambda cur: cur.execute("INSERT INTO public.bench_probe VALUES (now())"))
    committed = time.monotonic()
    state = {n["name"]: n["state"] for n in ha.node_states(t)}
    db.run(lambda cur: cur.execute("DROP TABLE public.bench_probe"))
    db.close()
    run(env, "ha", "release", standby)
    back = wait(lambda: ha.both_in_sync(t), 180, 0.5)
    return {"standby": standby, "write_committed_after_s": round(committed - held, 1),
            "hold_took_s": round(held - began, 1), "primary_state": state.get(primary),
            "standby_in_sync_again_after_s": round(back - held, 1) if back else None}


FILL = """
INSERT INTO kondge.card (number, pin_hash, balance, currency)
SELECT '8' || lpad(g::text, 11, '0'), %(pin)s, 0, 'USD' FROM generate_series(1, %(cards)s) g;
INSERT INTO kondge.cdr (gateway_id, call_id, card_number, duration, call_key, created_at)
SELECT %(gw)s, 'bench-' || g, '8' || lpad((g %% %(cards)s + 1)::text, 11, '0'), g %% 600,
       'bench-' || g, now() - interval '1 day'
  FROM generate_series(1, %(cdrs)s) g;
"""


def restore(args) -> dict:
    var = HOME / "var" / "bench-restore"
    env = dict(os.environ, KONDGE_VAR=str(var), KONDGE_PG_PORT="5497", KONDGE_WORKERS="2",
               KONDGE_AUTH_PORT="31912", KONDGE_ACCT_PORT="31913")
    env.pop("KONDGE_DSN", None)
    run(env, "server", "stop")
    subprocess.run(["rm", "-rf", str(var)])
    started = run(env, "server", "start")
    assert started.returncode == 0, started.stdout + started.stderr
    s = config.load(env)
    db = Database(s.dsn, timeout_ms=3600_000)
    pin, gw = db.run(lambda cur: (cur.execute(
        "SELECT (SELECT pin_hash FROM kondge.card LIMIT 1) AS p, "
        "(SELECT id FROM kondge.gateway LIMIT 1) AS g"), cur.fetchone())[1]).values()
    began = time.monotonic()
    db.run(lambda cur: cur.execute(FILL, {"pin": pin, "gw": gw, "cards": args.cards,
                                          "cdrs": args.cdrs}))
    db.run(lambda cur: cur.execute("ANALYZE"))
    filled = time.monotonic() - began
    size = db.run(lambda cur: (cur.execute("SELECT pg_database_size('kondge') AS b"),
                               cur.fetchone())[1])["b"]
    full = run(env, "backup", "--full", "--json")
    assert full.returncode == 0, full.stderr
    # rows after the backup: a moment between two of them is the target
    db.run(lambda cur: cur.execute(
        "INSERT INTO kondge.cdr (gateway_id, call_id, duration, call_key) "
        "SELECT %s, 'pitr-a-' || g, 0, 'pitr-a-' || g FROM generate_series(1, 1000) g", (gw,)))
    time.sleep(1.5)
    moment = db.run(lambda cur: (cur.execute("SELECT clock_timestamp() AS t"), cur.fetchone())[1])["t"]
    time.sleep(1.5)
    db.run(lambda cur: cur.execute(
        "INSERT INTO kondge.cdr (gateway_id, call_id, duration, call_key) "
        "SELECT %s, 'pitr-b-' || g, 0, 'pitr-b-' || g FROM generate_series(1, 1000) g", (gw,)))
    db.close()

    def answered():
        from tests.support.radius import RadiusClient
        c = RadiusClient(s.auth_port, s.acct_port, "testing123", timeout=0.5)
        try:
            r = c.access([("User-Name", "1000000008"), ("User-Password", "1234"),
                          ("Called-Station-Id", "18005550100")])
            return r is not None and r.accepted
        finally:
            c.close()

    t0 = time.monotonic()
    latest = run(env, "restore", "--yes", "--json")
    assert latest.returncode == 0, latest.stdout + latest.stderr
    first_call = wait(answered, 300, 0.1)
    out = {"cards": args.cards, "cdrs": args.cdrs, "fill_s": round(filled, 1),
           "database_bytes": size, "backup": json.loads(full.stdout),
           "restore_latest": json.loads(latest.stdout),
           "restore_latest_to_call_answered_s": round(first_call - t0, 1) if first_call else None}
    t0 = time.monotonic()
    pitr = run(env, "restore", "--yes", "--to", moment.isoformat(), "--json")
    assert pitr.returncode == 0, pitr.stdout + pitr.stderr
    first_call = wait(answered, 300, 0.1)
    db = Database(s.dsn)
    counts = db.run(lambda cur: (cur.execute(
        "SELECT count(*) FILTER (WHERE call_id LIKE 'pitr-a-%%') AS before, "
        "count(*) FILTER (WHERE call_id LIKE 'pitr-b-%%') AS after FROM kondge.cdr"),
        cur.fetchone())[1])
    db.close()
    out.update(pitr_target=moment.isoformat(), pitr=json.loads(pitr.stdout),
               pitr_to_call_answered_s=round(first_call - t0, 1) if first_call else None,
               pitr_rows_before_kept=counts["before"], pitr_rows_after_kept=counts["after"],
               pitr_right=counts["before"] == 1000 and counts["after"] == 0)
    run(env, "server", "stop")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=60, help="calls a second (default 60)")
    p.add_argument("--warmup", type=float, default=15, help="seconds of load before a fault")
    p.add_argument("--after", type=float, default=30, help="seconds of load after a fault")
    p.add_argument("--cards", type=int, default=1_000_000)
    p.add_argument("--cdrs", type=int, default=5_000_000)
    p.add_argument("--only", choices=("postmaster", "failover", "set", "standby", "restore"),
                   action="append", help="run this row only (repeat for more); default all")
    args = p.parse_args()
    only = set(args.only or ("postmaster", "failover", "set", "standby", "restore"))
    OUT.mkdir(parents=True, exist_ok=True)
    results = {}
    if only - {"restore"}:
        env = dict(os.environ, KONDGE_VAR=str(HOME / "var" / "bench-ha"),
                   KONDGE_HA_PG_PORT="5446", KONDGE_AUTH_PORT="31812", KONDGE_ACCT_PORT="31813",
                   KONDGE_WEB_PORT="0")           # no portal: not measured here
        env.pop("KONDGE_DSN", None)
        up = run(env, "ha", "up")
        if up.returncode != 0:
            print(up.stdout + up.stderr)
            return 3
        s = config.load(env)
        t = ha.Topology(s)
        holder = Holder(Database(t.dsn("kondge", "owner")))
        key = load_key(s.pin_key_file)
        try:
            for name, work in (("postmaster", postmaster_killed), ("failover", failover),
                               ("set", kill_set),
                               ("standby", standby_gone)):
                if name in only:
                    results[name] = work(args, env, t, holder, key)
                    print(name, json.dumps(results[name], default=str), flush=True)
        finally:
            run(env, "ha", "down")
    if "restore" in only:
        results["restore"] = restore(args)
        print("restore", json.dumps(results["restore"], default=str), flush=True)
    (OUT / "ha.json").write_text(json.dumps(results, indent=2, default=str))
    (OUT / "ha.txt").write_text("".join(f"{k}: {json.dumps(v, default=str)}\n"
                                        for k, v in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
