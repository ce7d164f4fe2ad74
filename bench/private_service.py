"""A service of its own for a benchmark: a private PostgreSQL cluster and
FreeRADIUS on free loopback ports under var/<name>, started with `kondge
server start` as a user would (make chaos, make fuzz).

    env = service_env(VAR, PG_PORT)
    s = config.load(env)
    start_fresh(env, VAR)          # whatever an earlier run left there is stopped and removed
    ...
    kondge(env, "server", "stop")
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import psycopg2.extras

HOME = Path(__file__).resolve().parent.parent
KONDGE = [sys.executable, "-m", "kondge_billing.cli"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_env(var: Path, pg_port: int, **settings) -> dict:
    """The environment of a service under `var`: its cluster on `pg_port`,
    FreeRADIUS on free loopback ports, its own PIN key; `settings` adds
    KONDGE_* variables (KONDGE_SWEEP_SECONDS="30")."""
    env = dict(os.environ)
    env.update({"KONDGE_VAR": str(var), "KONDGE_PG_PORT": str(pg_port),
                "KONDGE_AUTH_PORT": str(free_port()), "KONDGE_ACCT_PORT": str(free_port()),
                "KONDGE_LISTEN": "127.0.0.1", "KONDGE_PIN_KEY": str(var / "pin.key")})
    env.update(settings)
    env.pop("KONDGE_DSN", None)
    return env


def kondge(env, *args, timeout=180):
    return subprocess.run(KONDGE + list(args), env=env, cwd=HOME, capture_output=True,
                          text=True, timeout=timeout)


def start_fresh(env, var: Path):
    """Stop and remove what an earlier run left under `var`, make a PIN key,
    start the service; SystemExit with its output if it does not start."""
    if var.exists():
        kondge(env, "server", "stop")
        subprocess.run(["rm", "-rf", str(var)], check=True)
    var.mkdir(parents=True)
    (var / "pin.key").write_text(os.urandom(32).hex())
    (var / "pin.key").chmod(0o600)
    r = kondge(env, "server", "start")
    if r.returncode != 0:
        raise SystemExit(f"the service did not start:\n{r.stdout}{r.stderr}")


def db(s):
    """An autocommit connection to the service's database, as its owner."""
    conn = psycopg2.connect(s.dsn)
    conn.autocommit = True
    return conn


def query(s, sql, params=()):
    conn = db(s)
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def wait_drained(env, timeout=120) -> bool:
    """Wait until no record waits in a spool or a quarantine; whether none does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = kondge(env, "--json", "accounting", "spool")
        try:
            data = json.loads(r.stdout)
        except ValueError:
            data = {}
        if data.get("spooled") == 0 and data.get("quarantined") == 0:
            return True
        time.sleep(1.0)
    return False
