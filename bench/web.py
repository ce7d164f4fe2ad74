"""The card holders' web portal under load, and what it costs the call path.

On a service of its own (var/bench-web: its own cluster, FreeRADIUS on
free loopback ports, the portal on a free port), in one run:

1. logins per second: processes that each log in again and again (GET the
   form once, then POST card number and PIN with its CSRF token; every
   login checks the PIN in the database and opens a session);
2. page views per second: processes that each log in once and then fetch
   the summary page (/account: the card, its last calls and movements,
   three web_* calls) again and again;
3. the call path: complete calls (stage 1, stage 2, both legs' Start and
   Stop) from threads that each make one call after another, calls per
   second, alone and beside the portal serving --web-rate page views a
   second (50; with a login every 20 views), in slices taken A B B A A B
   B A (--rounds of each), so that other work on the machine that rises or
   falls steadily weighs on both alike; then the same beside a portal
   serving all it can. Each slowdown is 1 - (calls/s beside the portal) /
   (calls/s alone). For each, the CPU each part used (the portal,
   PostgreSQL's backends for the portal and for the rest, FreeRADIUS, the
   load generators, other work on the machine), from /proc, and the share
   of the busy CPU the portal and its backends took.

Each load generator is a process of its own, on the same 2-core machine as
the server: their own CPU is part of what the call path competes with, as
the figures say. Results in var/bench/web.{json,txt}.

    make bench-web                       # about 3 minutes
    .venv/bin/python bench/web.py --seconds 20 --web-clients 4 --call-threads 16
"""

import argparse
import http.client
import json
import multiprocessing
import os
import random
import socket
import sys
import threading
import time
import urllib.parse
from pathlib import Path

HOME = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HOME))

from kondge_billing.store import cards  # noqa: E402
from kondge_billing import config  # noqa: E402
from kondge_billing.operations.console import say  # noqa: E402
from kondge_billing.store.db import Database  # noqa: E402
from kondge_billing.store.pins import load_key  # noqa: E402
from tests.support.cards import luhn_number  # noqa: E402
from tests.support.load import Call, LoadResult, one_call  # noqa: E402
from tests.support.radius import RadiusClient  # noqa: E402
from bench.private_service import kondge, query, service_env, start_fresh  # noqa: E402

VAR = HOME / "var" / "bench-web"
OUT = HOME / "var" / "bench"
PIN = "1234"


# --- the web load (each in a process of its own) ---------------------------------------

class Portal:
    """One browser's worth of HTTP/1.1 on one kept-alive connection."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.cookies: dict[str, str] = {}

    def request(self, method, path, form=None) -> tuple[int, str]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        text = response.read().decode()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";")[0]
        return response.status, text

    def login(self, number) -> bool:
        _status, page = self.request("GET", "/login")
        csrf = page.split('name="csrf" value="')[1].split('"')[0]
        status, _ = self.request("POST", "/login", {"csrf": csrf, "number": number, "pin": PIN})
        return status == 302


def web_worker(port, numbers, mode, seconds, start_at, out, rate=0.0, on=None, stop=None):
    """mode 'login': log in again and again; 'view': log in once, then fetch
    /account, logging in again every 20 views; `rate`: at most so many
    requests a second (0: as fast as answered). For `seconds`; or, given the
    events `on` and `stop`, only while `on` is set, until `stop` is.
    Puts (logins, views, errors, its CPU seconds)."""
    while time.time() < start_at:
        time.sleep(0.01)
    portal, logins, views, errors = Portal(port), 0, 0, 0
    started = time.monotonic()
    deadline = started + seconds
    paced_from, paused = 0, False
    rng = random.Random(os.getpid())
    while not stop.is_set() if stop is not None else time.monotonic() < deadline:
        if on is not None and not on.is_set():
            paused = True
            time.sleep(0.01)
            continue
        if paused:                       # pace from now, not from before the pause
            started, paced_from, paused = time.monotonic(), logins + views + errors, False
        if rate:
            ahead = started + (logins + views + errors - paced_from) / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        try:
            if mode == "login" or views % 20 == 0:
                if portal.login(rng.choice(numbers)):
                    logins += 1
                else:
                    errors += 1
            if mode == "view":
                status, _ = portal.request("GET", "/account")
                if status == 200:
                    views += 1
                else:
                    errors += 1
        except (OSError, http.client.HTTPException, IndexError):
            errors += 1
            portal = Portal(port)
    cpu = os.times()
    out.put((logins, views, errors, cpu.user + cpu.system))


def web_load(port, numbers, mode, clients, seconds, rate=0.0) -> dict:
    """`clients` processes for `seconds`; `rate`: page views a second in all (0: flat out)."""
    queue = multiprocessing.Queue()
    start_at = time.time() + 1.0
    procs = [multiprocessing.Process(target=web_worker,
                                     args=(port, numbers, mode, seconds, start_at, queue,
                                           rate / clients))
             for _ in range(clients)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join(30)
    logins, views, errors, cpu = (sum(r[i] for r in results) for i in range(4))
    return {"clients": clients, "seconds": seconds, "logins": logins, "views": views,
            "errors": errors, "logins_per_s": round(logins / seconds, 1),
            "views_per_s": round(views / seconds, 1), "cpu_seconds": round(cpu, 2)}


# --- where the CPU goes ----------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")
PORTAL, PG_PORTAL, RADIUS, PG_REST, BENCH = (
    "the portal (waitress, nice 10)", "PostgreSQL for the portal",
    "FreeRADIUS (front end and workers)", "PostgreSQL for the rest (calls, WAL, ...)",
    "this benchmark's call generator")


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (all cores)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / TICK          # less idle and iowait


def process_cpu(s) -> dict[str, float]:
    """CPU seconds so far of each part of the service (and of this process),
    by process: the portal by its command line, FreeRADIUS by its name,
    PostgreSQL's backends by the application that opened them."""
    apps = {r["pid"]: r["application_name"] for r in query(
        s, "SELECT pid, application_name FROM pg_stat_activity")}
    totals = dict.fromkeys((PORTAL, PG_PORTAL, RADIUS, PG_REST, BENCH), 0.0)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICK            # utime, stime
        pid = int(entry)
        where = _cwd(pid)            # other checkouts run services of their own
        if pid == os.getpid():
            group = BENCH
        elif b"kondge_billing.web" in cmdline and where == str(HOME):
            group = PORTAL
        elif comm == "freeradius" and where == str(HOME):
            group = RADIUS
        elif comm == "postgres" and where.startswith(str(VAR)):
            group = PG_PORTAL if apps.get(pid) == "kondge-web" else PG_REST
        else:
            continue
        totals[group] += cpu
    totals["all busy CPU of the machine"] = machine_busy()
    return totals


def _cwd(pid: int) -> str:
    """A process's working directory (a postgres process's: its cluster's
    data directory; the service's processes': the checkout), or ''."""
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


# --- the call path ------------------------------------------------------------------

def call_load(s, numbers, threads, seconds) -> dict:
    result, stop_at = LoadResult(), time.monotonic() + seconds
    lock = threading.Lock()
    counted = []

    def worker(i):
        rng = random.Random(i)
        client = RadiusClient(s.auth_port, s.acct_port, "testing123")
        made = 0
        try:
            while time.monotonic() < stop_at:
                call = Call(numbers[i % len(numbers)], "447911123456", rng.randint(5, 60))
                one_call(client, call, PIN, "18005550100", rng, 0.0, result,
                         time.monotonic() + 30)
                if call.billed is not None:
                    made += 1
        except Exception as exc:  # noqa: BLE001 - counted in the report
            result.errors.append(repr(exc))
        finally:
            client.close()
            with lock:
                counted.append(made)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for t in pool:
        t.start()
    for t in pool:
        t.join(seconds + 60)
    elapsed = time.monotonic() - started
    return {"threads": threads, "seconds": round(elapsed, 1), "calls": sum(counted),
            "errors": len(result.errors), "calls_per_s": round(sum(counted) / elapsed, 1)}


def interleaved(s, port, numbers, args, rate) -> dict:
    """Calls alone and calls beside the portal serving page views (`rate` a
    second in all; 0: as many as it can), --seconds of each, in --rounds
    slices of each taken in the order A B B A A B B A ..., so that other
    work on the machine that rises or falls steadily weighs on both alike.
    The web load processes run throughout, working only in the B slices."""
    on, stop = multiprocessing.Event(), multiprocessing.Event()
    queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=web_worker,
                                     args=(port, numbers, "view", 0, 0, queue,
                                           rate / args.web_clients, on, stop))
             for _ in range(args.web_clients)]
    for p in procs:
        p.start()
    part = args.seconds / args.rounds
    took = {cond: {"calls": 0, "seconds": 0.0, "errors": 0, "cpu": {}}
            for cond in ("alone", "loaded")}
    web_seconds = 0.0
    try:
        for number in range(args.rounds):
            for cond in (("alone", "loaded") if number % 2 == 0 else ("loaded", "alone")):
                (on.set if cond == "loaded" else on.clear)()
                switched = time.monotonic()
                time.sleep(0.5)          # the portal's load comes up, or drains
                before, started = process_cpu(s), time.monotonic()
                calls = call_load(s, numbers, args.call_threads, part)
                after, ended = process_cpu(s), time.monotonic()
                if cond == "loaded":
                    web_seconds += ended - switched
                sums = took[cond]
                sums["calls"] += calls["calls"]
                sums["errors"] += calls["errors"]
                sums["seconds"] += ended - started
                for name in before:
                    sums["cpu"][name] = sums["cpu"].get(name, 0.0) + after[name] - before[name]
    finally:
        on.clear()
        stop.set()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    logins, views, errors, web_cpu = (sum(r[i] for r in results) for i in range(4))
    out = {"rate_asked": rate, "rounds": args.rounds, "views_per_s": round(views / web_seconds, 1),
           "logins": logins, "web_errors": errors}
    for cond, sums in took.items():
        shares = {name: round(value / sums["seconds"], 2) for name, value in sums["cpu"].items()}
        shares["the web load generators"] = (round(web_cpu / sums["seconds"], 2)
                                             if cond == "loaded" else 0.0)
        ours = sum(v for k, v in shares.items() if k != "all busy CPU of the machine")
        shares["other work on the machine"] = round(
            max(shares["all busy CPU of the machine"] - ours, 0.0), 2)
        out[cond] = {"calls": sums["calls"], "errors": sums["errors"],
                     "seconds": round(sums["seconds"], 1),
                     "calls_per_s": round(sums["calls"] / sums["seconds"], 1), "cpu": shares}
    out["slowdown_percent"] = round(
        100 * (1 - out["loaded"]["calls_per_s"] / out["alone"]["calls_per_s"]), 1)
    portal = out["loaded"]["cpu"][PORTAL] + out["loaded"]["cpu"][PG_PORTAL]
    out["portal_cpu_share_percent"] = round(
        100 * portal / out["loaded"]["cpu"]["all busy CPU of the machine"], 1)
    return out


def report(r: dict) -> str:
    paced, flat = r["paced"], r["flat_out"]
    lines = [f"web portal benchmark ({r['started_at']}, {r['machine_cpus']} CPUs; "
             f"one run, ratios within it)",
             f"logins/s:      {r['logins']['logins_per_s']} ({r['logins']['clients']} client "
             f"processes, {r['logins']['errors']} errors)",
             f"page views/s:  {r['views']['views_per_s']} of /account, with "
             f"{r['views']['logins_per_s']} logins/s ({r['views']['clients']} client processes,"
             f" {r['views']['errors']} errors)"]
    for name, run in ((f"{paced['rate_asked']:g} page views/s asked", paced),
                      ("all it can", flat)):
        lines.append(
            f"calls/s beside the portal serving {name}: {run['loaded']['calls_per_s']} "
            f"({run['views_per_s']} page views/s served) against {run['alone']['calls_per_s']} "
            f"alone, interleaved ({run['rounds']} slices of each): slowdown "
            f"{run['slowdown_percent']} % (aim: under 10 %); the portal and its database "
            f"backends used {run['portal_cpu_share_percent']} % of the busy CPU")
    lines += ["", "where the CPU went (cores used on average; 2 cores: 2.0 is all of it):"]
    columns = (("alone", paced["alone"]), ("paced", paced["loaded"]),
               ("alone", flat["alone"]), ("flat out", flat["loaded"]))
    lines.append(f"{'':44}" + "".join(f"{name:>10}" for name, _ in columns))
    for part in paced["loaded"]["cpu"]:
        lines.append(f"{part[:44]:44}" + "".join(f"{run['cpu'][part]:>10.2f}"
                                                 for _, run in columns))
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="per phase")
    parser.add_argument("--web-clients", type=int, default=4,
                        help="web load processes (each one browser, one request at a time)")
    parser.add_argument("--call-threads", type=int, default=16)
    parser.add_argument("--web-rate", type=float, default=50,
                        help="page views a second asked of the portal while calls are made")
    parser.add_argument("--rounds", type=int, default=4,
                        help="slices of calls alone and of calls beside the portal's load, "
                             "each, interleaved (A B B A ...)")
    parser.add_argument("--cards", type=int, default=40)
    parser.add_argument("--pg-port", type=int, default=5494)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as free:
        free.bind(("127.0.0.1", 0))
        web_port = free.getsockname()[1]
    env = service_env(VAR, args.pg_port, KONDGE_WEB_PORT=str(web_port))
    s = config.load(env)
    results = {"machine_cpus": os.cpu_count(), "started_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        start_fresh(env, VAR)
        key = load_key(s.pin_key_file)
        db = Database(s.dsn)
        numbers = [luhn_number() for _ in range(args.cards)]
        for number in numbers:
            db.run(lambda cur: cards.add(cur, key, number, PIN, "100000.00", "USD"))
        db.close()
        port = s.web_port
        say(f"logins alone, {args.seconds:.0f} s")
        results["logins"] = web_load(port, numbers, "login", args.web_clients, args.seconds)
        say(f"page views alone, {args.seconds:.0f} s")
        results["views"] = web_load(port, numbers, "view", args.web_clients, args.seconds)
        say(f"calls alone and beside {args.web_rate:g} page views/s, {args.seconds:.0f} s "
            f"of each")
        results["paced"] = interleaved(s, port, numbers, args, args.web_rate)
        say(f"calls alone and beside the portal serving all it can, {args.seconds:.0f} s "
            f"of each")
        results["flat_out"] = interleaved(s, port, numbers, args, 0)
    finally:
        kondge(env, "server", "stop")
    text = report(results)
    (OUT / "web.json").write_text(json.dumps(results, indent=2) + "\n")
    (OUT / "web.txt").write_text(text)
    print(text, end="")
    say(f"results in {OUT / 'web.json'} and {OUT / 'web.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
