"""The rating engine's Python cost per call, old against new, in one run.

No database and no server: rating contexts are built from tariffs/demo.yaml,
tariffs/example.yaml and an inline tariff with three bands and progressive
steps, as kondge.rating_context() would return them (the JSON shape,
already parsed, as psycopg2 hands it over). For each case (two or three
starts and balances, UTC with microseconds like the clock's) it times, with
timeit on process CPU time, what the call path does in Python:

  stage 2   context_from_json + allowed_seconds + call_cost of the grant
  stop      context_from_json + rate_call(explain=False) of a 3,600 s call
  allowed   allowed_seconds alone, on a ready context
  parse     context_from_json alone

The baseline is the engine, codec and money modules as committed at
--baseline (read with `git show`, imported under another package name), so
both run in the same process, round after round, alternating which goes
first. The machine is shared and noisy: read the ratios (old / new, the
median of the per-round ratios), not the microseconds. Before timing, every
case checks that both give the same grants and costs. Timings are floats,
never money.

    .venv/bin/python bench/engine.py [--baseline REV] [--rounds 7] [--seconds 0.2]
    make bench-engine [BASELINE=REV]
"""

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from textwrap import dedent

HOME = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HOME))

from kondge_billing.rating import codec, engine, tariff_file  # noqa: E402
from kondge_billing.rating.resolve import context_json  # noqa: E402

# Where the engine, codec and money modules are at a revision: the package's
# layout in layers, or (a revision before it) the tariffs folder.
BASELINE_LAYOUTS = (("rating", ("rating/money.py", "rating/engine.py", "rating/codec.py")),
                    ("tariffs", ("money.py", "tariffs/engine.py", "tariffs/codec.py")))
CAP = 86400

THREE_BANDS = """
    tariff: threebands
    valid_from: 2026-01-01
    currency: GBP
    decimals: 4
    rounding: half-up
    timezone: Europe/London
    destinations: {Mobile: [447]}
    bands:
      day: {days: [mon, tue, wed, thu, fri], hours: "08:00-18:00"}
      evening: {days: [mon, tue, wed, thu, fri], hours: "18:00-08:00"}
      weekend: {days: [sat, sun, holiday]}
    holidays: [2026-12-25]
    plans:
      - name: p
        rates:
          - destination: Mobile
            band: day
            connect: 0.05
            minimum: 0.10
            initial: 30
            steps:
              - {seconds: 60, per_minute: 0.30, increment: 30}
              - {seconds: 240, per_minute: 0.20, increment: 6}
              - {per_minute: 0.12, increment: 1}
          - destination: Mobile
            band: evening
            connect: 0.05
            steps:
              - {seconds: 60, per_minute: 0.18, increment: 30}
              - {per_minute: 0.08, increment: 6}
          - {destination: Mobile, band: weekend, per_minute: 0.04, increment: 1, initial: 1}
    discounts:
      - {name: weekend promo, percent: 12.5, bands: [weekend]}
"""


def utc(*args) -> datetime:
    """A start as the clock gives it: UTC, with microseconds."""
    return datetime(*args, 123456, tzinfo=timezone.utc)


# (label, tariff file or inline text, number dialled, [(start, balance)])
CASES = [
    ("demo UK mobile, no bands", "tariffs/demo.yaml", "447700900123",
     [(utc(2026, 3, 3, 12, 0, 0), "10.00"), (utc(2026, 3, 3, 23, 50, 0), "2.50"),
      (utc(2026, 3, 7, 9, 30, 0), "0.37")]),
    ("example Germany mobile, 3 bands", "tariffs/example.yaml", "4915112345",
     [(utc(2026, 3, 3, 20, 58, 0), "10.00"), (utc(2026, 3, 3, 11, 0, 0), "1.00"),
      (utc(2026, 3, 7, 22, 59, 30), "25.00")]),
    ("example Premium, progressive steps", "tariffs/example.yaml", "499001234",
     [(utc(2026, 3, 3, 12, 0, 0), "10.00"), (utc(2026, 3, 3, 20, 59, 0), "0.70")]),
    ("3 bands + progressive steps", THREE_BANDS, "447700900123",
     [(utc(2026, 3, 3, 17, 57, 0), "10.00"), (utc(2026, 3, 6, 23, 0, 0), "40.00"),
      (utc(2026, 3, 3, 7, 59, 59), "0.35")]),
]


def load_baseline(rev: str, into: Path):
    """The engine, codec and money modules at `rev`, as package kondge_baseline."""
    package = into / "kondge_baseline"
    for folder, names in BASELINE_LAYOUTS:
        shown = [subprocess.run(["git", "-C", str(HOME), "show", f"{rev}:kondge_billing/{name}"],
                                capture_output=True, text=True) for name in names]
        if any(s.returncode for s in shown):
            continue
        (package / folder).mkdir(parents=True)
        for name in ("__init__.py", f"{folder}/__init__.py"):
            (package / name).write_text("")
        for name, text in zip(names, shown):
            (package / name).write_text(text.stdout)
        sys.path.insert(0, str(into))
        return (importlib.import_module(f"kondge_baseline.{folder}.engine"),
                importlib.import_module(f"kondge_baseline.{folder}.codec"))
    raise SystemExit(f"bench/engine.py: no engine, codec and money modules at {rev}")


def default_baseline() -> str:
    found = subprocess.run(["git", "-C", str(HOME), "merge-base", "HEAD", "main"],
                           capture_output=True, text=True)
    return found.stdout.strip() or "HEAD"


def case_data(source: str, number: str) -> dict:
    path = HOME / source
    if path.suffix == ".yaml":
        doc, problems = tariff_file.parse_file(path)
    else:
        doc, problems = tariff_file.parse(dedent(source), "inline.yaml")
    assert not problems, problems
    data = context_json(doc, number)
    assert data is not None, f"{number} is not rated by {source}"
    return data


def workloads(eng, cod, data, calls):
    """The four timed functions of one case, on one engine."""
    ctx = cod.context_from_json(data)

    def stage2():
        for start, balance in calls:
            c = cod.context_from_json(data)
            eng.call_cost(c, start, eng.allowed_seconds(c, start, balance, CAP))

    def stop():
        for start, balance in calls:
            c = cod.context_from_json(data)
            eng.rate_call(c, start, 3600, explain=False)

    def allowed():
        for start, balance in calls:
            eng.allowed_seconds(ctx, start, balance, CAP)

    def parse():
        for _ in calls:
            cod.context_from_json(data)

    return {"stage 2": stage2, "stop": stop, "allowed": allowed, "parse": parse}


def answers(eng, cod, data, calls):
    ctx = cod.context_from_json(data)
    found = []
    for start, balance in calls:
        for at in (start, start + timedelta(seconds=1), start.replace(microsecond=0)):
            t = eng.allowed_seconds(ctx, at, balance, CAP)
            found.append((t, eng.call_cost(ctx, at, t), eng.call_cost(ctx, at, t + 1),
                          eng.rate_call(ctx, at, 3600).cost))
    return found


def loops(fn, seconds: float) -> int:
    """How many runs of fn take about `seconds` of CPU time."""
    number, taken = timeit.Timer(fn, timer=time.process_time).autorange()
    return max(1, int(number * seconds / max(taken, 1e-9)))


def per_call(fn, number: int, calls: int) -> float:
    """Microseconds of CPU time per call (process time: other processes' load
    slows it less than it slows the wall clock)."""
    return timeit.Timer(fn, timer=time.process_time).timeit(number) / number / calls * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=None,
                        help="git revision of the old engine (default: merge-base with main)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds, alternating old/new")
    parser.add_argument("--seconds", type=float, default=0.2,
                        help="about how long one timing runs")
    args = parser.parse_args()
    rev = args.baseline or default_baseline()
    with tempfile.TemporaryDirectory() as tmp:
        old_engine, old_codec = load_baseline(rev, Path(tmp))
        sides = {"old": (old_engine, old_codec), "new": (engine, codec)}
        print(f"baseline {rev[:12]} (old) against the working tree (new); "
              f"{args.rounds} rounds; microseconds per call, median")
        print(f"{'case':36} {'work':8} {'old':>9} {'new':>9} {'old/new':>8}")
        for label, source, number, raw_calls in CASES:
            data = case_data(source, number)
            calls = [(start, Decimal(balance)) for start, balance in raw_calls]
            got = {side: answers(*mods, data, calls) for side, mods in sides.items()}
            assert got["old"] == got["new"], (label, got)
            work = {side: workloads(*mods, data, calls) for side, mods in sides.items()}
            for name in work["old"]:
                number = {side: loops(work[side][name], args.seconds) for side in work}
                times = {"old": [], "new": []}
                for r in range(args.rounds):
                    order = ("old", "new") if r % 2 == 0 else ("new", "old")
                    for side in order:
                        times[side].append(per_call(work[side][name], number[side], len(calls)))
                ratio = statistics.median(o / n for o, n in zip(times["old"], times["new"]))
                print(f"{label:36} {name:8} {statistics.median(times['old']):9.1f} "
                      f"{statistics.median(times['new']):9.1f} {ratio:7.2f}x", flush=True)


if __name__ == "__main__":
    main()
