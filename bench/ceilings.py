"""The unlang ceiling alone: how many complete calls FreeRADIUS answers with no
module at all, and what the load generator costs while it measures that.

Starts the unlang-only FreeRADIUS of bench/minimal_radius.py (same raddb,
gateways, secrets, cards and destinations as bench/calls.py; no database)
under var/bench-ceilings and drives it with bench/loadgen.py at each offered
rate. With `--compare REV`, the generator as committed at REV (read with
`git show`, imported beside the current one) takes turns with the current
one on the same server in the same run: each step, each round, in the order
A B then B A, so that the noise of the machine falls on both.

Writes var/bench/ceilings.json and var/bench/ceilings.txt; progress on stderr.

    .venv/bin/python bench/ceilings.py [--compare REV] [--steps 500,1000,...]
        [--seconds 5] [--rounds 2] [--processes 4]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

HOME = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HOME))

from bench import calls, loadgen, minimal_radius, tariffs as tariff_bench  # noqa: E402

VAR = HOME / "var" / "bench-ceilings"
STEPS = (500, 1000, 2000, 3000, 4000)


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


def one_step(generator, name, auth, acct, data, rate, seconds, processes, pid) -> dict:
    gws, cards, dests = data
    target = generator.Target(auth, acct, gws, cards, dests)
    r0, m0, t0 = calls.proc_cpu(pid), calls.machine_cpu(), time.monotonic()
    result = generator.run(target, [generator.Step(rate, seconds)], processes)[0]
    r1, m1, wall = calls.proc_cpu(pid), calls.machine_cpu(), time.monotonic() - t0
    result.update({
        "generator": name,
        "freeradius_cpu_percent": round(100 * (r1 - r0) / wall),
        "machine_busy_percent": round(100 * (m1[0] - m0[0]) / max(m1[1] - m0[1], 1)),
        "generator_cpu_ms_per_call": round(
            1000 * result["generator_cpu_seconds"] / max(result["started"], 1), 3)})
    calls.say(f"{name}: {rate:g} offered -> {result['calls_per_second']} calls/s, p99 "
              f"{result['p99_ms_all']} ms, lost {result['lost_total']}, generator "
              f"{result['generator_cpu_ms_per_call']} ms CPU a call")
    return result


def summary(runs: list) -> dict:
    out = {}
    for name in dict.fromkeys(r["generator"] for r in runs):
        mine = [r for r in runs if r["generator"] == name]
        out[name] = {
            "most_calls_per_second": max(r["calls_per_second"] for r in mine),
            "clean_calls_per_second": calls.best(mine),
            "generator_cpu_seconds_per_1000_calls": round(
                1000 * sum(r["generator_cpu_seconds"] for r in mine)
                / max(sum(r["started"] for r in mine), 1), 3)}
    return out


def table(results: dict) -> str:
    lines = [f"bench/ceilings.py, {results['started_at']}, {results['machine_cpus']} CPUs, "
             f"unlang-only FreeRADIUS; generator: {results['processes']} processes, "
             f"{results['step_seconds']:g} s a step", ""]
    head = (f"{'generator':<12} {'offered':>7} {'calls/s':>8} {'pkts/s':>8} {'p50 ms':>7} "
            f"{'p99 ms':>7} {'lost':>6} {'fail':>5} {'rad%':>5} {'cpu%':>5} {'gen cpu s':>9} "
            f"{'ms/call':>8} {'lag ms':>7}")
    lines += [head, "-" * len(head)]
    for r in sorted(results["runs"], key=lambda r: (r["offered_calls_per_second"],
                                                    r["generator"])):
        p50 = max(v["p50_ms"] for v in r["latency"].values())
        lines.append(
            f"{r['generator']:<12} {r['offered_calls_per_second']:>7g} "
            f"{r['calls_per_second']:>8} {r['packets_per_second']:>8} {p50:>7.1f} "
            f"{r['p99_ms_all']:>7.1f} {r['lost_total']:>6} {r['failed_total']:>5} "
            f"{r['freeradius_cpu_percent']:>5} {r['machine_busy_percent']:>5} "
            f"{r['generator_cpu_seconds']:>9} {r['generator_cpu_ms_per_call']:>8} "
            f"{r['schedule_lag_ms_max']:>7.0f}")
    lines.append("")
    for name, s in results["summary"].items():
        lines.append(f"{name}: most {s['most_calls_per_second']} calls/s, clean (no loss, "
                     f"p99 < 50 ms) {s['clean_calls_per_second']} calls/s, generator "
                     f"{s['generator_cpu_seconds_per_1000_calls']} CPU s per 1,000 calls")
    return "\n".join(lines) + "\n"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--compare", metavar="REV",
                   help="also run bench/loadgen.py as committed at REV, in turns")
    p.add_argument("--steps", default=",".join(map(str, STEPS)), help="offered calls/s")
    p.add_argument("--seconds", type=float, default=5.0, help="length of each step")
    p.add_argument("--rounds", type=int, default=2, help="times each step is run")
    p.add_argument("--processes", type=int, default=4, help="load generator processes")
    p.add_argument("--cards", type=int, default=100000)
    p.add_argument("--out", default=str(calls.OUT / "ceilings"), help="output path without suffix")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    generators = [("current", loadgen)]
    if args.compare:
        generators.append((args.compare, generator_at(args.compare)))
    gws, cards = calls.gateway_list(), calls.card_list(args.cards)
    data = (gws, cards, calls.destinations(100000))
    shutil.rmtree(VAR, ignore_errors=True)
    auth, acct = tariff_bench.free_port(), tariff_bench.free_port()
    inst = minimal_radius.Instance(
        minimal_radius.write_raddb(VAR / "radius-unlang", "unlang", gws, auth, acct))
    results = {"started_at": time.strftime("%Y-%m-%d %H:%M:%S"), "machine_cpus": os.cpu_count(),
               "processes": args.processes, "step_seconds": args.seconds,
               "command": " ".join([".venv/bin/python", "bench/ceilings.py"]
                                   + (argv if argv is not None else sys.argv[1:])),
               "runs": []}
    try:
        inst.start()
        for name, generator in generators:          # warm-up, as bench/calls.py does
            one_step(generator, name, auth, acct, data, 200, 2, args.processes, inst.pid)
        for rate in (float(r) for r in args.steps.split(",")):
            for i in range(args.rounds):
                for name, generator in (generators if i % 2 == 0 else generators[::-1]):
                    results["runs"].append(one_step(generator, name, auth, acct, data, rate,
                                                    args.seconds, args.processes, inst.pid))
    finally:
        inst.stop()
    results["summary"] = summary(results["runs"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    text = table(results)
    out.with_suffix(".txt").write_text(text)
    print(text)
    print(f"bench: results in {out}.json and {out}.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
