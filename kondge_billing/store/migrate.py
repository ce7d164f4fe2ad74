"""The database's schema and functions, brought up to date at every start.

1. sql/migrations/NNNN_name.sql: the schema (tables, indexes, constraints,
   views, data moves), applied in order, once each, and recorded in
   kondge_meta.schema_version. 0011_baseline.sql holds everything up to
   migration 11; a database that had those applied one by one skips it.
2. sql/functions/*.sql: every function, one file each (a trigger function's
   file also says where it fires), applied whole every time, so that what
   runs is what the files say. A function whose arguments or result change,
   or that is retired, is dropped by a migration first.
3. sql/grants.sql: the roles' privileges, every time.

Each step runs in its own transaction; an advisory lock keeps two servers
starting at once from applying the same file twice.
"""

import re
from pathlib import Path

import psycopg2

FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql\Z")
LOCK_KEY = 0x6B6F6E64  # "kond"
BASELINE = 11          # 0011_baseline.sql: the schema of migrations 1 to 11


class MigrationError(RuntimeError):
    pass


def migration_files(directory: Path) -> list[tuple[int, str, Path]]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNNN_name.sql")
        found.append((int(match[1]), match[2], path))
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{directory}: two migrations share a number")
    return found


def function_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.sql"))


def defined_functions_in(path: Path) -> list[str]:
    """The names of the functions one file defines (schema kondge)."""
    return re.findall(r"CREATE OR REPLACE FUNCTION kondge\.([a-z_0-9]+)\(", path.read_text())


def defined_functions(directory: Path) -> set[str]:
    """The names of the functions the files define."""
    return {name for path in function_files(directory) for name in defined_functions_in(path)}


def _pending(done: set[int], files) -> list:
    if done and BASELINE not in done:
        missing = [v for v in range(1, BASELINE + 1) if v not in done]
        if missing:
            raise MigrationError(
                f"this database stopped at migration {max(done):04d}, before the schema "
                f"was folded into 0011_baseline.sql; upgrade it with a release that still "
                f"has migrations 0001-0011 first")
    return [(v, n, p) for v, n, p in files if v not in done]


def apply(dsn: str, directory: Path, log=print) -> list[int]:
    """Apply the migrations not yet applied, then the functions and the grants;
    return the numbers of the migrations applied now."""
    sql_dir = directory.parent
    applied_now = []
    conn = psycopg2.connect(dsn, application_name="kondge-migrate")
    try:
        with conn:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
                cur.execute("CREATE SCHEMA IF NOT EXISTS kondge_meta")
                cur.execute("""CREATE TABLE IF NOT EXISTS kondge_meta.schema_version (
                                   version integer PRIMARY KEY,
                                   name text NOT NULL,
                                   applied_at timestamptz NOT NULL DEFAULT now())""")
                cur.execute("SELECT version FROM kondge_meta.schema_version")
                done = {row[0] for row in cur.fetchall()}
        for version, name, path in _pending(done, migration_files(directory)):
            with conn:
                with conn.cursor() as cur:
                    cur.execute(path.read_text())
                    cur.execute("SET search_path TO DEFAULT")
                    cur.execute("INSERT INTO kondge_meta.schema_version (version, name) "
                                "VALUES (%s, %s)", (version, name))
            log(f"applied migration {version:04d} {name}")
            applied_now.append(version)
        with conn:
            with conn.cursor() as cur:
                # bodies refer to each other: check them when they run, not in file order
                cur.execute("SET LOCAL check_function_bodies = off")
                for path in function_files(sql_dir / "functions"):
                    cur.execute(path.read_text())
                cur.execute("SET search_path TO DEFAULT")
        grants = sql_dir / "grants.sql"
        if grants.exists():
            with conn:
                with conn.cursor() as cur:
                    cur.execute(grants.read_text())
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    finally:
        conn.close()
    return applied_now


def orphan_functions(cur, sql_dir: Path) -> list[str]:
    """Functions of schema kondge that no file in sql/functions defines (a
    migration should have dropped them)."""
    cur.execute("""SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                    WHERE n.nspname = 'kondge' ORDER BY 1""")
    names = {row[0] if isinstance(row, tuple) else row["proname"] for row in cur.fetchall()}
    return sorted(names - defined_functions(sql_dir / "functions"))
