"""Schema migrations: sql/migrations/NNNN_name.sql, applied in order, once;
then sql/grants.sql (the roles' privileges), every time.

Each file runs in its own transaction and is recorded in
kondge_meta.schema_version; an advisory lock keeps two servers starting at
once from applying the same file twice.
"""

import re
from pathlib import Path

import psycopg2

FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
LOCK_KEY = 0x6B6F6E64  # "kond"


def migration_files(directory: Path) -> list[tuple[int, str, Path]]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = FILE.match(path.name)
        if not match:
            raise SystemExit(f"{path}: migration files are named NNNN_name.sql")
        found.append((int(match[1]), match[2], path))
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise SystemExit(f"{directory}: two migrations share a number")
    return found


def apply(dsn: str, directory: Path, log=print) -> list[int]:
    """Apply the migrations not yet applied; return their numbers."""
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
        for version, name, path in migration_files(directory):
            if version in done:
                continue
            with conn:
                with conn.cursor() as cur:
                    cur.execute(path.read_text())
                    cur.execute("SET search_path TO DEFAULT")
                    cur.execute("INSERT INTO kondge_meta.schema_version (version, name) "
                                "VALUES (%s, %s)", (version, name))
            log(f"applied migration {version:04d} {name}")
            applied_now.append(version)
        grants = directory.parent / "grants.sql"
        if grants.exists():
            with conn:
                with conn.cursor() as cur:
                    cur.execute(grants.read_text())
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    finally:
        conn.close()
    return applied_now
