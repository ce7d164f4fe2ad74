"""Where the service's client CPU goes, a packet: psycopg2's execute and
fetch against the service's own Python around them, outside FreeRADIUS.

Plays complete calls through the call path (radius_edge's handle_authorize
and handle_accounting, as bench/profile_calls.py does, no profiler) in one
process, on a cluster of its own with the bench data set (var/bench-split,
port 5489), and reads the thread's CPU (CLOCK_THREAD_CPUTIME_ID) around
each packet and around each statement's execute and fetch. The first
round warms up; the last is reported. The timing's own cost (about a
microsecond a reading, six readings a statement) is in the figures.

    .venv/bin/python bench/client_split.py [--calls 3000] [--rounds 2]

Writes var/bench/client_split.txt (and .json). Timings are floats, never
money.
"""

import argparse
import sys
import time
from pathlib import Path

HOME = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HOME))

from bench import calls as bench_calls  # noqa: E402
from bench import profile_calls  # noqa: E402
from kondge_billing.store.db import Database  # noqa: E402

VAR = HOME / "var" / "bench-split"
OUT = HOME / "var" / "bench"
PG_PORT = 5489
PACKETS = ("stage1", "stage2", "start answer", "start originate", "stop originate",
           "stop answer")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=3000, help="calls a round (default 3000)")
    p.add_argument("--rounds", type=int, default=2, help="rounds, the first a warm-up")
    p.add_argument("--cards", type=int, default=20000)
    p.add_argument("--prefixes", type=int, default=1000)
    args = p.parse_args(argv)
    if args.calls < 1 or args.rounds < 1:
        p.error("--calls and --rounds must be at least 1")
    if args.cards < args.calls * args.rounds:
        p.error("--cards must be at least --calls x --rounds (a card serves one call)")
    b = profile_calls.fresh_var(VAR, PG_PORT, args.cards, args.prefixes)
    s = b.s
    try:
        profile_calls.load(b)
        db = Database(s.dsn, s.db_timeout_ms, deadline_ms=s.db_timeout_ms + 500,
                      one_connection=True)
        billing = profile_calls.make_billing(s, db)
        inside = profile_calls.Timed(db, clock=time.thread_time, fetch=True)
        log = lambda *_a: None  # noqa: E731
        for n in range(args.rounds):
            total = dict.fromkeys(PACKETS, 0.0)
            executing = dict.fromkeys(PACKETS, 0.0)
            for i in range(n * args.calls, (n + 1) * args.calls):
                card, pin = b.card_list[i]
                pairs = profile_calls.call_pairs(b.gws[i % len(b.gws)][0], card, pin,
                                                 b.dests[i % len(b.dests)], i)
                for name, (_kind, how, packet) in zip(PACKETS, pairs):
                    before = inside.seconds
                    t = time.thread_time()
                    result = (profile_calls.handle_authorize(billing, packet, log)[0]
                              if how == "auth"
                              else profile_calls.handle_accounting(billing, packet, log))
                    total[name] += time.thread_time() - t
                    executing[name] += inside.seconds - before
                    if result != "ok":
                        raise SystemExit(f"the service answered {result} for {name} of "
                                         f"card {card}")
        db.close()
    finally:
        profile_calls.stack.stop_postgres(s)
    per = lambda v: round(1e6 * v / args.calls, 1)  # noqa: E731
    report = {"calls": args.calls, "rounds": args.rounds,
              "per_packet_us": {k: {"all": per(total[k]), "execute_and_fetch": per(executing[k]),
                                    "outside": per(total[k] - executing[k])} for k in PACKETS}}
    lines = [f"bench/client_split.py: the last of {args.rounds} rounds of {args.calls} calls, "
             "one process; thread CPU a packet (us)", "",
             f"  {'packet':<16} {'all':>8} {'execute+fetch':>14} {'outside':>8}"]
    for k, v in report["per_packet_us"].items():
        lines.append(f"  {k:<16} {v['all']:>8} {v['execute_and_fetch']:>14} {v['outside']:>8}")
    bench_calls.write_results(OUT, "client_split", lines, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
