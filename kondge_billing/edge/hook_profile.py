"""Where the hook's CPU goes inside FreeRADIUS, for the benchmarks.

Off unless KONDGE_HOOK_CPU names a file prefix (bench/floor.py --hook-cpu):
then each hook call's thread CPU (user and system, the time.thread_time
clock: what this FreeRADIUS thread spent, not the time it waited) and its
wall time (how long the packet held its worker, waits for the database,
the WAL flush and a CPU included) are added up by packet kind, and every
EVERY packets the totals are written to <prefix>.<pid>.json. With
KONDGE_HOOK_CPU=<prefix>,functions (--hook-profile) the calls also run under
one cProfile of the process, on the same clock, written to
<prefix>.<pid>.prof (its own cost is then in the totals too).
A count that cannot be written is skipped: it never costs a packet.

Outside FreeRADIUS the call path can be profiled directly
(bench/profile_calls.py); inside, the same code costs more, and this says
how much, per packet kind. Timings are floats and integers: never money.
"""

import cProfile
import json
import os
import resource
import time
from pathlib import Path

from . import attributes
from .request import STATUS

EVERY = 200     # packets between two writes of the totals
KINDS = ("access", "start", "interim", "stop", "other")
FUNCTIONS = ",functions"    # KONDGE_HOOK_CPU=<prefix>,functions: under cProfile too


def accounting_kind(pairs) -> str:
    """The record's kind by its Acct-Status-Type, without parsing the rest."""
    for item in pairs or ():
        if (isinstance(item, tuple) and len(item) >= 2
                and item[0] == attributes.ACCT_STATUS_TYPE):
            kind = STATUS.get(str(item[-1]).strip())
            return kind if kind in KINDS else "other"
    return "other"


class HookCpu:
    """One process's totals: {kind: [packets, thread ns, user s, system s, wall ns]}."""

    def __init__(self, prefix: str, functions: bool = False, every: int = EVERY):
        self.setting = prefix + (FUNCTIONS if functions else "")   # KONDGE_HOOK_CPU
        self.path = Path(f"{prefix}.{os.getpid()}.json")
        self.prof_path = Path(f"{prefix}.{os.getpid()}.prof")
        self.every = every
        self.totals = {kind: [0, 0, 0.0, 0.0, 0] for kind in KINDS}
        self.count = 0
        self.profile = cProfile.Profile(time.thread_time) if functions else None

    @classmethod
    def from_env(cls, environ=os.environ):
        setting = environ.get("KONDGE_HOOK_CPU")
        if not setting:
            return None
        if setting.endswith(FUNCTIONS):
            return cls(setting[:-len(FUNCTIONS)], functions=True)
        return cls(setting)

    def run(self, kind: str, work):
        """work() with its thread CPU and wall time added to `kind`'s totals."""
        # the wall clock read first and last: its interval holds the CPU
        # clock's, so a packet never counts more CPU than wall time
        w0 = time.monotonic_ns()
        r0 = resource.getrusage(resource.RUSAGE_THREAD)
        t0 = time.thread_time_ns()
        if self.profile is not None:
            self.profile.enable()
        try:
            return work()
        finally:
            if self.profile is not None:
                self.profile.disable()
            t1 = time.thread_time_ns()
            r1 = resource.getrusage(resource.RUSAGE_THREAD)
            w1 = time.monotonic_ns()
            total = self.totals.get(kind) or self.totals["other"]
            total[0] += 1
            total[1] += t1 - t0
            total[2] += r1.ru_utime - r0.ru_utime
            total[3] += r1.ru_stime - r0.ru_stime
            total[4] += w1 - w0
            self.count += 1
            if self.count % self.every == 0:
                self.write()

    def write(self):
        try:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"pid": os.getpid(), "totals": self.totals}))
            tmp.replace(self.path)
            if self.profile is not None:
                self.profile.dump_stats(str(self.prof_path))
        except OSError:
            pass                     # the bench reads fewer packets; the call is served


def read_totals(prefix: str) -> dict:
    """The totals of every process written under `prefix`, added up:
    {kind: [packets, thread ns, user s, system s, wall ns]}."""
    out = {kind: [0, 0, 0.0, 0.0, 0] for kind in KINDS}
    base = Path(prefix)
    for path in sorted(base.parent.glob(base.name + ".*.json")):
        try:
            totals = json.loads(path.read_text())["totals"]
        except (OSError, ValueError, KeyError):
            continue                 # being replaced this instant: the next read has it
        for kind, values in totals.items():
            if kind in out and len(values) == len(out[kind]):
                out[kind] = [a + b for a, b in zip(out[kind], values)]
    return out


def per_packet(before: dict, after: dict) -> dict:
    """Between two read_totals: each kind's packets, µs of thread CPU a
    packet, its system share, and the µs a packet held its worker (wall)."""
    out = {}
    for kind in KINDS:
        n, ns, user, system, wall = (a - b for a, b in zip(after[kind], before[kind]))
        if n > 0:
            out[kind] = {"packets": n, "us_a_packet": round(ns / n / 1000, 1),
                         "system_share": round(system / (user + system), 3)
                         if user + system > 0 else None,
                         "wall_us_a_packet": round(wall / n / 1000, 1)}
    return out


def top_functions(prefix: str, limit: int = 30) -> str:
    """The processes' cProfiles merged: the functions by own thread CPU."""
    import io
    import pstats
    base = Path(prefix)
    files = sorted(str(p) for p in base.parent.glob(base.name + ".*.prof"))
    if not files:
        return ""
    stream = io.StringIO()
    stats = pstats.Stats(*files, stream=stream)
    stats.strip_dirs().sort_stats("tottime").print_stats(limit)
    return stream.getvalue()
