"""Shared fixtures: a private PostgreSQL cluster and the real service.

Everything runs under var/test (made fresh for each session) on ports of
its own, so the suite runs beside a `make run` and leaves nothing running.
"""

import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg2
import pytest

from kondge_billing import config
from kondge_billing.store import migrate
from kondge_billing.operations import stack
from kondge_billing.store.db import Database
from kondge_billing.store.gateways import GatewayDirectory, all_gateways
from kondge_billing.store.pins import load_key
from kondge_billing.calls.service import Billing

HOME = Path(__file__).resolve().parent.parent
TEST_VAR = HOME / "var" / "test"
KONDGE = [sys.executable, "-m", "kondge_billing.cli"]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def test_env():
    if TEST_VAR.exists():
        stack.stop_background(config.load(_env_for(TEST_VAR, 0, 0)))
        shutil.rmtree(TEST_VAR)
    TEST_VAR.mkdir(parents=True)
    key = TEST_VAR / "pin.key"
    key.write_text(os.urandom(32).hex())
    key.chmod(0o600)
    return _env_for(TEST_VAR, free_udp_port(), free_udp_port())


def _env_for(var, auth_port, acct_port):
    env = dict(os.environ)
    # KONDGE_TEST_PG_PORT: another port, for a second checkout's suite run alongside
    env.update({"KONDGE_VAR": str(var),
                "KONDGE_PG_PORT": os.environ.get("KONDGE_TEST_PG_PORT", "5499"),
                "KONDGE_AUTH_PORT": str(auth_port), "KONDGE_ACCT_PORT": str(acct_port),
                "KONDGE_LISTEN": "127.0.0.1", "KONDGE_PIN_KEY": str(var / "pin.key"),
                "KONDGE_GATEWAY_SYNC": "0.5", "KONDGE_WEB_PORT": str(free_tcp_port())})
    env.pop("KONDGE_DSN", None)
    return env


@pytest.fixture(scope="session")
def settings(test_env):
    return config.load(test_env)


@pytest.fixture(scope="session")
def cluster(settings):
    """The test cluster with a migrated template database."""
    stack.ensure_cluster(settings)
    stack.start_postgres(settings)
    stack.ensure_database(settings)
    conn = psycopg2.connect(stack.superuser_dsn(settings))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS kondge_template")
        cur.execute("CREATE DATABASE kondge_template OWNER kondge")
    conn.close()
    migrate.apply(_dsn(settings, "kondge_template"), HOME / "sql" / "migrations", log=lambda m: None)
    yield settings
    stack.stop_background(settings)


def _dsn(settings, dbname):
    return f"host={settings.pg_socket_dir} port={settings.pg_port} dbname={dbname} user=kondge"


@pytest.fixture
def dsn(cluster):
    """A fresh, migrated database for one test."""
    name = "t_" + uuid.uuid4().hex[:12]
    conn = psycopg2.connect(stack.superuser_dsn(cluster))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} TEMPLATE kondge_template OWNER kondge")
    yield _dsn(cluster, name)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE {name} WITH (FORCE)")
    conn.close()


@pytest.fixture
def db(dsn):
    database = Database(dsn)
    yield database
    database.close()


@pytest.fixture
def pin_key(settings):
    return load_key(settings.pin_key_file)


@pytest.fixture
def billing(db, pin_key):
    return Billing(db, pin_key, GatewayDirectory(lambda: db.run(all_gateways), max_age=0),
                   max_credit_time=86400)


@pytest.fixture(scope="session")
def service(cluster, test_env):
    """The real service (`kondge server start`): PostgreSQL + FreeRADIUS."""
    result = subprocess.run(KONDGE + ["server", "start"], env=test_env, cwd=HOME,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    yield Service(test_env, config.load(test_env))
    subprocess.run(KONDGE + ["server", "stop"], env=test_env, cwd=HOME,
                   capture_output=True, text=True, timeout=120)


class Service:
    def __init__(self, env, settings):
        self.env = env
        self.settings = settings
        self.db = Database(settings.dsn)

    def kondge(self, *args, env=None):
        return subprocess.run(KONDGE + list(args), env=env or self.env, cwd=HOME,
                              capture_output=True, text=True, timeout=120)

    def client(self, secret="testing123", source="127.0.0.1", timeout=2.0):
        from tests.support.radius import RadiusClient
        return RadiusClient(self.settings.auth_port, self.settings.acct_port, secret,
                            source=source, timeout=timeout)
