"""Two trees' call path side by side: this working tree against a revision.

On this machine the neighbours move absolute timings by 2x from one minute
to the next, so a change worth 5 % cannot be told from the noise by
running the old tree, then the new one. This runs them at once instead:
the revision (cloned into var/ab/base) and the working tree each play
bench/profile_calls.py's rounds on a cluster of their own (ports 5496 and
5497), and each round begins in both at the same moment (a file barrier),
so that both share whatever the machine does during it. Per round it
reports the PostgreSQL backend's and the Python side's CPU a call of both
and their ratio, tree / base; then the median ratio and in how many rounds
the tree was the cheaper. Both run on the same two cores, so each is slower
than alone; the ratio is the figure.

    .venv/bin/python bench/ab.py REV [--rounds 10] [--round-calls 1000]

REV must have bench/profile_calls.py's --barrier (from the commit that
added this script). Writes var/bench/ab.txt and ab.json. Timings are
floats, never money.
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HOME = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HOME))

from bench import calls as bench_calls  # noqa: E402

AB = HOME / "var" / "ab"
OUT = HOME / "var" / "bench"
PORTS = {"base": 5496, "tree": 5497}


def clone(rev: str) -> Path:
    """`rev` of this repository, checked out afresh in var/ab/base."""
    base = AB / "base"
    if base.exists():
        shutil.rmtree(base)
    AB.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(HOME), str(base)], check=True)
    subprocess.run(["git", "-C", str(base), "checkout", "--quiet", rev], check=True)
    profile = base / "bench" / "profile_calls.py"
    if "--barrier" not in profile.read_text():
        raise SystemExit(f"bench/ab.py: {rev} predates bench/profile_calls.py --barrier; "
                         "compare against a later revision")
    return base


def command(home: Path, name: str, args) -> list:
    return [sys.executable, str(home / "bench" / "profile_calls.py"), "--calls", str(args.calls),
            "--rounds", str(args.rounds), "--round-calls", str(args.round_calls),
            "--port", str(PORTS[name]), "--var", str(AB / f"var-{name}"),
            "--out", str(AB / f"out-{name}"), "--barrier", str(AB / "barrier")]


def compare(base: list, tree: list) -> dict:
    """Round by round, tree / base, for the backend's and Python's CPU a call."""
    pairs = []
    for b, t in zip(base, tree):
        pairs.append({"round": b["round"],
                      "base_backend_ms": b["backend_cpu_ms"],
                      "tree_backend_ms": t["backend_cpu_ms"],
                      "backend_ratio": round(t["backend_cpu_ms"] / b["backend_cpu_ms"], 3),
                      "base_python_ms": b["python_cpu_ms"], "tree_python_ms": t["python_cpu_ms"],
                      "python_ratio": round(t["python_cpu_ms"] / b["python_cpu_ms"], 3),
                      "base_wal_bytes": b["wal_bytes"], "tree_wal_bytes": t["wal_bytes"]})

    def summed(ratios):
        return {"median_ratio": round(statistics.median(ratios), 3),
                "tree_cheaper_rounds": sum(r < 1 for r in ratios), "rounds": len(ratios)}
    summary = {key: summed([p[f"{key}_ratio"] for p in pairs]) for key in ("backend", "python")}
    summary["both"] = summed([(p["tree_backend_ms"] + p["tree_python_ms"])
                              / (p["base_backend_ms"] + p["base_python_ms"]) for p in pairs])
    return {"pairs": pairs, "summary": summary}


def report_lines(rev: str, result: dict) -> list:
    lines = [f"bench/ab.py: the working tree against {rev}, rounds side by side; CPU a call (ms)",
             f"{'round':>5} {'backend base':>13} {'tree':>7} {'ratio':>6}   "
             f"{'Python base':>11} {'tree':>7} {'ratio':>6}   {'WAL base':>8} {'tree':>6}"]
    for p in result["pairs"]:
        lines.append(f"{p['round']:>5} {p['base_backend_ms']:>13} {p['tree_backend_ms']:>7} "
                     f"{p['backend_ratio']:>6}   {p['base_python_ms']:>11} "
                     f"{p['tree_python_ms']:>7} {p['python_ratio']:>6}   "
                     f"{p['base_wal_bytes']:>8} {p['tree_wal_bytes']:>6}")
    for key, s in result["summary"].items():
        lines.append(f"{key}: tree / base median {s['median_ratio']}, the tree cheaper in "
                     f"{s['tree_cheaper_rounds']} of {s['rounds']} rounds")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rev", help="the revision to compare the working tree with (e.g. HEAD, main~1)")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--round-calls", type=int, default=1000)
    p.add_argument("--calls", type=int, default=100,
                   help="calls played under the profiler first (they also warm both up)")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.round_calls < 1 or args.calls < 1:
        p.error("--rounds, --round-calls and --calls must be at least 1")
    base = clone(args.rev)
    barrier = AB / "barrier"
    if barrier.exists():
        shutil.rmtree(barrier)
    barrier.mkdir(parents=True)
    logs = {name: open(AB / f"{name}.log", "w") for name in PORTS}
    procs = {name: subprocess.Popen(command(home, name, args), stdout=logs[name],
                                    stderr=subprocess.STDOUT, cwd=home)
             for name, home in (("base", base), ("tree", HOME))}
    failed = [name for name, proc in procs.items() if proc.wait() != 0]
    for log in logs.values():
        log.close()
    if failed:
        for name in failed:
            sys.stderr.write((AB / f"{name}.log").read_text()[-3000:])
        raise SystemExit(f"bench/ab.py: the {' and '.join(failed)} run failed (var/ab/*.log)")
    reports = {name: json.loads((AB / f"out-{name}" / "profile.json").read_text())
               for name in PORTS}
    result = compare(reports["base"]["rounds"], reports["tree"]["rounds"])
    result["rev"] = args.rev
    bench_calls.write_results(OUT, "ab", report_lines(args.rev, result), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
