"""The unlang ceiling alone: how many complete calls FreeRADIUS answers with no
module at all, and what the load generator costs while it measures that.

Starts the unlang-only FreeRADIUS of bench/minimal_radius.py (same raddb,
gateways, secrets, cards and destinations as bench/calls.py; no database)
under var/bench-ceilings and drives it with bench/loadgen.py at each offered
rate. With `--compare REV`, the generator as committed at REV (read with
`git show`, imported beside the current one) takes turns with the current
one on the same server in the same run: each step, each round, in the order
A B then B A, so that the noise of the machine falls on both.

With `--frontend N`, the service's front end takes turns with the direct
server too: freeradius/frontend.conf run as the supervisor runs it
(kondge_billing.operations.radius_processes: Radius, the gateways' clients.conf;
workers.conf from radius_config.workers_conf) in front of N unlang-only workers (minimal_radius's
site on loopback port pairs, the front end their only client, one shared
secret). Each step reports the front end's CPU alone, the workers' together
and the machine's, and the front end's CPU microseconds per packet.
`--frontend-threads 0,8` and `--frontend-pools keyed-balance` add variants
of the front end, each on a copy of freeradius/ under var/bench-ceilings
with only that changed: the thread pool's size (0: no thread pool, so
FreeRADIUS runs single-threaded) or the home server pool's type
(keyed-balance is keyed on h323-conf-id, so a call's packets go to one
worker; round_robin is a FreeRADIUS alias of load-balance, a measure of
the noise); `--frontend-nice -5` adds each of them again with its threads
reniced. The workers are shared by all front ends; one is driven at a time.

Writes var/bench/ceilings.json and var/bench/ceilings.txt; progress on stderr.

    .venv/bin/python bench/ceilings.py [--compare REV] [--steps 500,1000,...]
        [--seconds 5] [--rounds 2] [--processes 4]
        [--frontend N [--frontend-threads 0,8] [--frontend-pools keyed-balance]
                      [--frontend-nice -5]]
"""

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

HOME = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HOME))

from bench import calls, loadgen, minimal_radius, tariffs as tariff_bench  # noqa: E402
from kondge_billing import config  # noqa: E402
from kondge_billing.store import gateways  # noqa: E402
from kondge_billing.operations import radius_config, radius_processes  # noqa: E402

VAR = HOME / "var" / "bench-ceilings"
STEPS = (500, 1000, 2000, 3000, 4000)
THREAD_POOL = re.compile(r"^thread pool \{\n.*?^\}\n", re.M | re.S)
# a variant's thread pool, as freeradius/radiusd.conf's (less its comments)
THREAD_POOL_TEXT = """thread pool {{
	start_servers = {n}
	max_servers = {n}
	min_spare_servers = {n}
	max_spare_servers = {n}
	max_requests_per_server = 0
	auto_limit_acct = no
	max_queue_size = $ENV{{KONDGE_QUEUE_SIZE}}
}}

"""


def generator_at(rev: str) -> types.ModuleType:
    """bench/loadgen.py as committed at `rev`, as a module of its own."""
    source = subprocess.run(["git", "show", f"{rev}:bench/loadgen.py"], cwd=HOME, check=True,
                            capture_output=True, text=True).stdout
    name = f"loadgen_at_{rev.replace('-', '_').replace('/', '_').replace('.', '_')}"
    module = types.ModuleType(name)
    module.__file__ = str(HOME / "bench" / "loadgen.py")     # it finds the dictionary by it
    sys.modules[name] = module                               # its results are pickled
    exec(compile(source, f"{rev}:bench/loadgen.py", "exec"), module.__dict__)  # noqa: S102
    return module


# --- what the generator talks to ----------------------------------------------------

@dataclass
class Target:
    """Where the gateways send: the direct unlang server, or a front end (`front`)
    in front of the workers. `answering` are the processes that answer the calls."""

    name: str
    auth: int
    acct: int
    answering: list = field(default_factory=list)     # pids
    front: int | None = None
    setting: dict = field(default_factory=dict)       # how the front end differs, if it does

    def describe(self) -> dict:
        threads = None
        if self.front is not None:      # the process's own count: the pool's and the main one
            threads = len(os.listdir(f"/proc/{self.front}/task"))
        return {"name": self.name, "auth_port": self.auth, "acct_port": self.acct,
                "answering_processes": len(self.answering), "frontend_os_threads": threads,
                **self.setting}


def unlang_instance(name: str, clients: list,
                    worker: bool = False) -> tuple[minimal_radius.Instance, int]:
    """minimal_radius's unlang-only server on free loopback ports (an auth and
    an acct port; a worker behind the front end: its three), started."""
    port = radius_processes.free_ports(3 if worker else 2)
    inst = minimal_radius.Instance(minimal_radius.write_raddb(
        VAR / name, "unlang", clients, port, port + 1, worker=worker))
    inst.start()
    return inst, port


def frontend_home(name: str, threads: int | None, pool: str) -> Path:
    """The project folder the front end runs from: this one, or for a variant a copy
    of freeradius/ with only its thread pool (0: none, single-threaded) or, for
    keyed-balance, the pool's key changed."""
    if threads is None and pool != "keyed-balance":
        return HOME
    home = VAR / name / "home"
    raddb = home / "freeradius"
    shutil.copytree(HOME / "freeradius", raddb, symlinks=True)
    if threads is not None:
        conf = raddb / "frontend.conf"
        conf.write_text(THREAD_POOL.sub("", conf.read_text()))
        _rewrite(conf, r"^(modules \{)", (THREAD_POOL_TEXT.format(n=threads) if threads else
                                          "# bench/ceilings.py: no thread pool\n\n") + r"\1",
                 count=1)
    if pool == "keyed-balance":
        _rewrite(raddb / "policy.d" / "kondge", r'(\t\t&Proxy-To-Realm := "kondge_workers"\n)',
                 r'\1\t\t&Load-Balance-Key := "%{h323-conf-id}"\n', count=1)
    return home


def _rewrite(path: Path, pattern: str, replacement: str, count: int):
    """Change a copied file, or stop if it no longer reads as expected."""
    text, n = re.subn(pattern, replacement, path.read_text(), flags=re.M | re.S)
    if n != count:
        raise RuntimeError(f"{path}: {pattern!r} matched {n} times, not {count}: "
                           "bench/ceilings.py no longer knows this file")
    path.write_text(text)


def frontend(name: str, workers: list, secret: str, gws: list, threads: int | None = None,
             pool: str = "load-balance", nice: int = 0) -> radius_processes.Radius:
    """The service's front end (frontend.conf, started by radius_processes.Radius as the
    supervisor starts it) on free ports, for the gateways `gws`, in front of
    `workers` [(name, port)]; started, and if `nice`, reniced (every thread)."""
    auth, acct = tariff_bench.free_port(), tariff_bench.free_port()
    s = config.load({"KONDGE_HOME": str(frontend_home(name, threads, pool)),
                     "KONDGE_VAR": str(VAR / name / "var"), "KONDGE_LISTEN": "127.0.0.1",
                     "KONDGE_AUTH_PORT": str(auth), "KONDGE_ACCT_PORT": str(acct),
                     "KONDGE_WORKERS": str(len(workers))})
    radius_processes.render_clients(s, [
        gateways.Gateway(i + 1, f"bench-gw-{i:03d}", address, gw_secret, "cisco", "optional",
                         "originate", 1)
        for i, (address, gw_secret) in enumerate(gws)])
    radius_config.write_private(s.radius_run_dir / "workers.conf",
                                radius_config.workers_conf(workers, secret, pool))
    front = radius_processes.Radius(s, conf="frontend")
    front.start()
    for tid in os.listdir(f"/proc/{front.proc.pid}/task") if nice else ():
        os.setpriority(os.PRIO_PROCESS, int(tid), nice)     # per thread on Linux
    return front


def frontend_variants(args) -> list[tuple[str, int | None, str, int]]:
    """(name, thread pool size or None for frontend.conf's, pool type, nice) of each
    front end; with --frontend-nice, each also reniced."""
    out = [("frontend", None, "load-balance", 0)]
    out += [(f"fe-threads-{n}", n, "load-balance", 0)
            for n in (int(v) for v in args.frontend_threads.split(",") if v)]
    out += [(f"fe-{kind}", None, kind, 0) for kind in args.frontend_pools.split(",") if kind]
    if args.frontend_nice:
        out += [(f"{name}-nice{args.frontend_nice:+d}", threads, pool, args.frontend_nice)
                for name, threads, pool, _nice in out]
    return out


def frontend_threads() -> int:
    """freeradius/frontend.conf's thread pool size; 0 if it has none (single-threaded)."""
    found = THREAD_POOL.search((HOME / "freeradius" / "frontend.conf").read_text())
    return int(re.search(r"^\tmax_servers = (\d+)$", found.group(), re.M).group(1)) if found else 0


# --- one step -----------------------------------------------------------------------

def one_step(generator, gen_name, label, target, data, rate, seconds, processes) -> dict:
    gws, cards, dests = data
    load = generator.Target(target.auth, target.acct, gws, cards, dests)
    pids = [target.front] + target.answering

    def cpu():
        return [calls.proc_cpu(pid) for pid in pids]

    c0, m0, t0, d0 = cpu(), calls.machine_cpu(), time.monotonic(), calls.kernel_udp_drops()
    result = generator.run(load, [generator.Step(rate, seconds)], processes)[0]
    c1, m1, wall = cpu(), calls.machine_cpu(), time.monotonic() - t0
    used = [b - a for a, b in zip(c0, c1)]
    packets = sum(v["count"] for v in result["latency"].values())
    result.update({
        "generator": gen_name, "target": target.name, "run": label,
        "packets_answered": packets,
        "frontend_cpu_seconds": round(used[0], 3) if target.front else None,
        "answering_cpu_seconds": round(sum(used[1:]), 3),
        "answering_cpu_percent_each": [round(100 * u / wall) for u in used[1:]],
        "frontend_cpu_percent": round(100 * used[0] / wall) if target.front else None,
        "answering_cpu_percent": round(100 * sum(used[1:]) / wall),
        "freeradius_cpu_percent": round(100 * sum(used) / wall),
        "frontend_cpu_us_per_packet": (round(1e6 * used[0] / max(packets, 1), 1)
                                       if target.front else None),
        "freeradius_cpu_us_per_packet": round(1e6 * sum(used) / max(packets, 1), 1),
        "machine_busy_percent": round(100 * (m1[0] - m0[0]) / max(m1[1] - m0[1], 1)),
        "kernel_udp_drops": calls.kernel_udp_drops() - d0,
        "generator_cpu_ms_per_call": round(
            1000 * result["generator_cpu_seconds"] / max(result["started"], 1), 3)})
    front = (f", front end {result['frontend_cpu_us_per_packet']} us CPU a packet"
             if target.front else "")
    calls.say(f"{label}: {rate:g} offered -> {result['calls_per_second']} calls/s, p99 "
              f"{result['p99_ms_all']} ms, {loadgen.describe_lost(result)}, generator "
              f"{result['generator_cpu_ms_per_call']} ms CPU a call{front}")
    return result


# --- output -------------------------------------------------------------------------

def summary(runs: list) -> dict:
    out = {}
    for name in dict.fromkeys(r["run"] for r in runs):
        mine = [r for r in runs if r["run"] == name]
        packets = sum(r["packets_answered"] for r in mine)
        out[name] = {
            "most_calls_per_second": max(r["calls_per_second"] for r in mine),
            "clean_calls_per_second": calls.best(mine),
            "freeradius_cpu_us_per_packet": round(
                1e6 * sum(r["answering_cpu_seconds"] + (r["frontend_cpu_seconds"] or 0)
                          for r in mine) / max(packets, 1), 1),
            "generator_cpu_seconds_per_1000_calls": round(
                1000 * sum(r["generator_cpu_seconds"] for r in mine)
                / max(sum(r["started"] for r in mine), 1), 3)}
        if mine[0]["frontend_cpu_seconds"] is not None:
            out[name]["frontend_cpu_us_per_packet"] = round(
                1e6 * sum(r["frontend_cpu_seconds"] for r in mine) / max(packets, 1), 1)
    return out


def ratios(results: dict) -> dict:
    """Each front end's ceilings against the direct server's, within this run."""
    s = results["summary"]
    direct = {name: v for name, v in s.items() if name.startswith("direct")}
    out = {}
    for name, v in s.items():
        base = direct.get(name.replace(name.split("/")[0], "direct", 1))
        if base is None or name in direct:
            continue
        for key in ("clean_calls_per_second", "most_calls_per_second"):
            if base[key]:
                out[f"{name} / direct, {key}"] = round(v[key] / base[key], 3)
    return out


def table(results: dict) -> str:
    frontends = results.get("frontend_workers")
    lines = [f"bench/ceilings.py, {results['started_at']}, {results['machine_cpus']} CPUs, "
             f"unlang-only FreeRADIUS"
             + (f" (direct, and behind the front end with {frontends} unlang workers)"
                if frontends else "")
             + f"; generator: {results['processes']} processes, "
             f"{results['step_seconds']:g} s a step", "",
             "fe%: the front end alone; ans%: the processes that answer (the direct server, "
             "or the workers together); rad%: both; cpu%: the machine (100 = all CPUs); "
             "us/pkt: CPU microseconds per packet answered", ""]
    width = max([len(r["run"]) for r in results["runs"]] + [9])
    head = (f"{'run':<{width}} {'offered':>7} {'calls/s':>8} {'pkts/s':>8} {'s1 p50/p99':>11} "
            f"{'s2 p50/p99':>11} {'start p50/p99':>13} {'stop p50/p99':>12} {'lost':>6} "
            f"{'fail':>5} {'fe%':>4} {'ans%':>4} {'rad%':>4} {'cpu%':>4} {'fe us/pkt':>9} "
            f"{'rad us/pkt':>10} {'gen ms/call':>11} {'lag ms':>6}")
    lines += [head, "-" * len(head)]
    order = list(dict.fromkeys(r["run"] for r in results["runs"]))
    for r in sorted(results["runs"], key=lambda r: (r["offered_calls_per_second"],
                                                    order.index(r["run"]))):
        lat = r["latency"]
        cell = lambda k: f"{lat[k]['p50_ms']:.1f}/{lat[k]['p99_ms']:.1f}"  # noqa: E731
        dash = lambda v: "-" if v is None else v  # noqa: E731
        lines.append(
            f"{r['run']:<{width}} {r['offered_calls_per_second']:>7g} "
            f"{r['calls_per_second']:>8} {r['packets_per_second']:>8} {cell('stage1'):>11} "
            f"{cell('stage2'):>11} {cell('start'):>13} {cell('stop'):>12} "
            f"{r['lost_total']:>6} {r['failed_total']:>5} {dash(r['frontend_cpu_percent']):>4} "
            f"{r['answering_cpu_percent']:>4} {r['freeradius_cpu_percent']:>4} "
            f"{r['machine_busy_percent']:>4} {dash(r['frontend_cpu_us_per_packet']):>9} "
            f"{r['freeradius_cpu_us_per_packet']:>10} {r['generator_cpu_ms_per_call']:>11} "
            f"{r['schedule_lag_ms_max']:>6.0f}")
    lines.append("")
    for name, s in results["summary"].items():
        front = (f", front end {s['frontend_cpu_us_per_packet']} us CPU a packet"
                 if "frontend_cpu_us_per_packet" in s else "")
        lines.append(f"{name}: most {s['most_calls_per_second']} calls/s, clean (no loss, "
                     f"p99 < 50 ms) {s['clean_calls_per_second']} calls/s; FreeRADIUS "
                     f"{s['freeradius_cpu_us_per_packet']} us CPU a packet{front}; generator "
                     f"{s['generator_cpu_seconds_per_1000_calls']} CPU s per 1,000 calls")
    if results.get("ratios"):
        lines.append("ratios within this run: " + ", ".join(
            f"{k} {v}" for k, v in results["ratios"].items()))
    return "\n".join(lines) + "\n"


def save(results: dict, text: str, out: Path):
    """`out`.json (the results) and `out`.txt (the table), which is printed too."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".txt").write_text(text)
    print(text)
    print(f"bench: results in {out}.json and {out}.txt")


# --- the run ------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--compare", metavar="REV",
                   help="also run bench/loadgen.py as committed at REV, in turns")
    p.add_argument("--steps", default=",".join(map(str, STEPS)), help="offered calls/s")
    p.add_argument("--seconds", type=float, default=5.0, help="length of each step")
    p.add_argument("--rounds", type=int, default=2, help="times each step is run")
    p.add_argument("--processes", type=int, default=4, help="load generator processes")
    p.add_argument("--cards", type=int, default=100000)
    p.add_argument("--frontend", type=int, default=0, metavar="N",
                   help="also run the service's front end in front of N unlang workers, in turns")
    p.add_argument("--frontend-threads", default="", metavar="LIST",
                   help="with --frontend: also front ends with these thread pool sizes "
                        "(0: no thread pool, single-threaded)")
    p.add_argument("--frontend-pools", default="", metavar="LIST",
                   help="with --frontend: also front ends with these home server pool types "
                        "(keyed-balance, round_robin, fail-over, ...)")
    p.add_argument("--out", default=str(calls.OUT / "ceilings"), help="output path without suffix")
    p.add_argument("--frontend-nice", type=int, default=0, metavar="N",
                   help="with --frontend: also each front end with its threads reniced to N "
                        "(e.g. -5: the scheduler serves it before the workers)")
    args = p.parse_args(argv)
    if (args.frontend_threads or args.frontend_pools or args.frontend_nice) \
            and args.frontend < 1:
        p.error("--frontend-threads, --frontend-pools and --frontend-nice need --frontend N")
    return args


def start_targets(args, gws: list, started: list) -> list[Target]:
    """The direct server and, with --frontend, the workers and each front end;
    everything started is appended to `started`, to be stopped."""
    direct, port = unlang_instance("radius-unlang", gws)
    started.append(direct)
    targets = [Target("direct", port, port + 1, [direct.pid])]
    if args.frontend < 1:
        return targets
    as_is = frontend_threads()
    secret = secrets.token_urlsafe(24)
    workers = []
    for i in range(1, args.frontend + 1):
        inst, port = unlang_instance(f"worker-{i}", [("127.0.0.1", secret)], worker=True)
        started.append(inst)
        workers.append((f"kondge-worker-{i}", port, inst.pid))
    for name, threads, pool, nice in frontend_variants(args):
        front = frontend(name, [(w, port) for w, port, _pid in workers], secret, gws,
                         threads, pool, nice)
        started.append(front)
        targets.append(Target(name, front.s.auth_port, front.s.acct_port,
                              [pid for _w, _port, pid in workers], front.proc.pid,
                              {"thread_pool": as_is if threads is None else threads,
                               "pool_type": pool, "nice": nice}))
    return targets


def main(argv=None) -> int:
    args = parse_args(argv)
    generators = [("current", loadgen)]
    if args.compare:
        generators.append((args.compare, generator_at(args.compare)))
    gws, cards = calls.gateway_list(), calls.card_list(args.cards)
    data = (gws, cards, calls.destinations(100000))
    shutil.rmtree(VAR, ignore_errors=True)
    results = {"started_at": time.strftime("%Y-%m-%d %H:%M:%S"), "machine_cpus": os.cpu_count(),
               "processes": args.processes, "step_seconds": args.seconds,
               "frontend_workers": args.frontend or None,
               "command": " ".join([".venv/bin/python", "bench/ceilings.py"]
                                   + (argv if argv is not None else sys.argv[1:])),
               "runs": []}
    started = []
    try:
        targets = start_targets(args, gws, started)
        results["targets"] = [t.describe() for t in targets]
        pairs = [(t, g) for t in targets for g in generators]

        def label(target, gen_name):
            parts = ([target.name] if len(targets) > 1 else []) + (
                [gen_name] if len(generators) > 1 or len(targets) == 1 else [])
            return "/".join(parts)

        for target, (name, generator) in pairs:     # warm-up, as bench/calls.py does
            one_step(generator, name, label(target, name), target, data, 200, 2,
                     args.processes)
        for rate in (float(r) for r in args.steps.split(",")):
            for i in range(args.rounds):
                for target, (name, generator) in (pairs if i % 2 == 0 else pairs[::-1]):
                    results["runs"].append(one_step(generator, name, label(target, name),
                                                    target, data, rate, args.seconds,
                                                    args.processes))
    finally:
        for proc in reversed(started):
            proc.stop()
    results["summary"] = summary(results["runs"])
    results["ratios"] = ratios(results)
    save(results, table(results), Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
