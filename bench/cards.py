"""Benchmark: issue 100,000 cards and write their XLSX file, timed.

    .venv/bin/python bench/cards.py [--count 100000]     (or: make bench-cards)

Runs on a private PostgreSQL cluster of its own (var/bench, port 5498), in
a fresh database, and stops the cluster afterwards. Prints the time of the
database part (numbers, PIN hashes, COPY, cards, ledger entries, audit,
commit) and of the XLSX file, and checks the ledger reconciles.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import psycopg2

HOME = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HOME))

from kondge_billing.store import categories, issuance, migrate  # noqa: E402
from kondge_billing import config, xlsx  # noqa: E402
from kondge_billing.operations import stack  # noqa: E402
from kondge_billing.store.db import Database  # noqa: E402
from kondge_billing.progress import Progress  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    args = parser.parse_args()
    var = HOME / "var" / "bench"
    var.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, KONDGE_VAR=str(var), KONDGE_PG_PORT="5498")
    env.pop("KONDGE_DSN", None)
    settings = config.load(env)
    stack.ensure_cluster(settings)
    stack.start_postgres(settings)
    try:
        stack.ensure_database(settings)
        run(settings, args.count)
    finally:
        stack.stop_background(settings)


def run(settings, count):
    su = psycopg2.connect(stack.superuser_dsn(settings))
    su.autocommit = True
    with su.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS kondge_bench WITH (FORCE)")
        cur.execute("CREATE DATABASE kondge_bench OWNER kondge")
    dsn = f"host={settings.pg_socket_dir} port={settings.pg_port} dbname=kondge_bench user=kondge"
    migrate.apply(dsn, HOME / "sql" / "migrations", log=lambda m: None)
    db = Database(dsn, timeout_ms=600_000)
    db.transaction(lambda cur: categories.add(cur, "bench-10", face_value="10.00",
                                              validity="after-issue", valid_days=365))
    key = os.urandom(32).hex().encode()
    bar = lambda label, total: Progress(label, total, enabled=True)  # noqa: E731
    started = time.perf_counter()
    batch = db.transaction(lambda cur: issuance.issue(cur, key, "bench-10", count, "bench",
                                                      "bench", progress=bar))
    issued = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.xlsx"
        progress = Progress("writing", count, enabled=True)
        xlsx.write_table(out, "bench", issuance.PRINT_COLUMNS, issuance.print_rows(batch),
                         progress)
        progress.finish()
        written = time.perf_counter()
        size = out.stat().st_size
    mismatch = db.run(lambda cur: (cur.execute(
        "SELECT count(*) AS n FROM kondge.v_balance_mismatch"), cur.fetchone())[1])["n"]
    db.close()
    with su.cursor() as cur:
        cur.execute("DROP DATABASE kondge_bench WITH (FORCE)")
    su.close()
    print(f"{count} cards: database {issued - started:.1f} s, XLSX {written - issued:.1f} s "
          f"({size / 1e6:.1f} MB), total {written - started:.1f} s; "
          f"v_balance_mismatch rows: {mismatch}")
    return 0 if mismatch == 0 and written - started < 60 else 1


if __name__ == "__main__":
    sys.exit(main())
