"""Settings, read once from the environment, with local defaults.

Every path defaults to a place inside the project folder, so a fresh
checkout runs without configuration. A test or a second instance sets
KONDGE_VAR (and the ports) to run beside the first.

| variable                 | default                      | meaning |
|--------------------------|------------------------------|---------|
| KONDGE_HOME              | the project folder           | where freeradius/ and mods-config/ are |
| KONDGE_VAR               | $KONDGE_HOME/var             | runtime state: database cluster, logs, pids |
| KONDGE_PG_PORT           | 5433                         | port of the private PostgreSQL cluster |
| KONDGE_PG_BIN            | found (cluster.pg_bin)       | folder of PostgreSQL's initdb and pg_ctl; unset: the first holding both of /usr/lib/postgresql/<the cluster's version>/bin, pg_config --bindir, the newest /usr/lib/postgresql/<version>/bin |
| KONDGE_DSN               | the private cluster's socket | libpq connection string of the database (the owner role, kondge) |
| KONDGE_RADIUS_DSN        | KONDGE_DSN as kondge_radius  | what FreeRADIUS's hook connects as (the call-path role) |
| KONDGE_DB_USER           | kondge                       | the role the kondge tool connects as on the private cluster (kondge_operator: card work only) |
| KONDGE_LISTEN            | 127.0.0.1                    | address FreeRADIUS listens on |
| KONDGE_AUTH_PORT         | 1812                         | RADIUS authentication port |
| KONDGE_ACCT_PORT         | 1813                         | RADIUS accounting port |
| KONDGE_PIN_KEY           | $KONDGE_HOME/var/secrets/pin.key | key of the PIN hashes |
| KONDGE_GATEWAY_SYNC      | 2                            | seconds between gateway-table checks (0.5 allowed) |
| KONDGE_MAX_CREDIT_TIME   | 86400                        | upper bound of a granted call, seconds |
| KONDGE_DB_TIMEOUT_MS     | 2000                         | statement timeout on the call path |
| KONDGE_CARD_CHECK_DIGIT  | luhn                         | luhn: a card number's last digit is its Luhn check digit; none: no check |
| KONDGE_HOLD_SECONDS      | 300                          | a stage-2 hold whose call never starts stops counting after this |
| KONDGE_SESSION_GRACE     | 600                          | a live call is closed this long after its granted time if no Stop came |
| KONDGE_SWEEP_SECONDS     | 30                           | how often the supervisor sweeps holds and lost calls |
| KONDGE_QUEUE_SIZE        | 256                          | packets that may wait for a FreeRADIUS thread; more are dropped (overload) |
| KONDGE_WORKERS           | 4                            | FreeRADIUS processes running the billing hook; 2 or more sit behind a FreeRADIUS front end on the gateway ports, 1 serves the gateways itself |
| KONDGE_AUTH_WHEN_DB_DOWN | silent                       | silent: no answer (the gateway tries its second server); reject: Access-Reject, code 8 |
| KONDGE_UNAUTHORISED_CALLS | record                      | a call whose accounting matches no authorisation: record (CDR flagged no-authorisation, nothing charged) or charge (the card its User-Name names pays, at its tariff) |
| KONDGE_SHED_AFTER_MS     | 250                          | overload control: while accounting records wait longer than this in a FreeRADIUS process's queue, it turns new authorizations away as KONDGE_AUTH_WHEN_DB_DOWN says (0: never) |
"""

import os
import sys
from decimal import Decimal, InvalidOperation
from dataclasses import dataclass
from pathlib import Path

def _project_home() -> Path:
    """The folder with freeradius/, sql/ and tariffs/: the checkout the package
    sits in, or, for an installed package (a wheel), <prefix>/share/kondge-billing."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "sql" / "migrations").is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "kondge-billing"


PROJECT_HOME = _project_home()


@dataclass(frozen=True)
class Settings:
    home: Path
    var: Path
    pg_port: int
    dsn: str
    radius_dsn: str
    listen: str
    auth_port: int
    acct_port: int
    pin_key_file: Path
    gateway_sync_ms: int
    max_credit_time: int
    db_timeout_ms: int
    card_check_digit: str
    hold_seconds: int
    session_grace: int
    sweep_seconds: int
    auth_when_db_down: str
    queue_size: int
    unauthorised_calls: str
    workers: int
    shed_after_us: int = 250_000      # KONDGE_SHED_AFTER_MS, in microseconds
    pg_bin: Path | None = None        # KONDGE_PG_BIN; None: found (cluster.pg_bin)

    @property
    def gateway_sync_seconds(self):
        return self.gateway_sync_ms / 1000

    @property
    def pg_data(self) -> Path:
        return self.var / "pg" / "data"

    @property
    def pg_socket_dir(self) -> Path:
        return self.var / "pg" / "run"

    @property
    def log_dir(self) -> Path:
        return self.var / "log"

    @property
    def radius_run_dir(self) -> Path:
        return self.var / "radius"

    @property
    def gateway_directory(self) -> Path:
        """The gateways every hook of this server serves (written by the supervisor)."""
        return self.radius_run_dir / "gateways.json"

    @property
    def supervisor_pid_file(self) -> Path:
        return self.var / "supervisor.pid"


def _int(env, name, default):
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a whole number; fix or unset it") from None


def _choice(env, name, choices):
    raw = env.get(name) or choices[0]
    if raw not in choices:
        raise SystemExit(f"{name}={raw!r}: use one of {', '.join(choices)}")
    return raw


def _milliseconds(env, name, default):
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        return int(Decimal(raw) * 1000)
    except InvalidOperation:
        raise SystemExit(f"{name}={raw!r} is not a number of seconds; fix or unset it") from None


def load(env=None) -> Settings:
    env = os.environ if env is None else env
    home = Path(env.get("KONDGE_HOME") or PROJECT_HOME).resolve()
    var = Path(env.get("KONDGE_VAR") or home / "var").resolve()
    pg_port = _int(env, "KONDGE_PG_PORT", 5433)
    private = f"host={var / 'pg' / 'run'} port={pg_port} dbname=kondge user="
    dsn = env.get("KONDGE_DSN") or private + (env.get("KONDGE_DB_USER") or "kondge")
    radius_dsn = env.get("KONDGE_RADIUS_DSN") or (
        private + "kondge_radius" if not env.get("KONDGE_DSN") else env["KONDGE_DSN"])
    return Settings(
        home=home,
        var=var,
        pg_port=pg_port,
        dsn=dsn,
        radius_dsn=radius_dsn,
        listen=env.get("KONDGE_LISTEN") or "127.0.0.1",
        auth_port=_int(env, "KONDGE_AUTH_PORT", 1812),
        acct_port=_int(env, "KONDGE_ACCT_PORT", 1813),
        pin_key_file=Path(env.get("KONDGE_PIN_KEY") or home / "var" / "secrets" / "pin.key"),
        gateway_sync_ms=_milliseconds(env, "KONDGE_GATEWAY_SYNC", 2000),
        max_credit_time=_int(env, "KONDGE_MAX_CREDIT_TIME", 86400),
        db_timeout_ms=_int(env, "KONDGE_DB_TIMEOUT_MS", 2000),
        card_check_digit=_choice(env, "KONDGE_CARD_CHECK_DIGIT", ("luhn", "none")),
        hold_seconds=_int(env, "KONDGE_HOLD_SECONDS", 300),
        session_grace=_int(env, "KONDGE_SESSION_GRACE", 600),
        sweep_seconds=_int(env, "KONDGE_SWEEP_SECONDS", 30),
        auth_when_db_down=_choice(env, "KONDGE_AUTH_WHEN_DB_DOWN", ("silent", "reject")),
        queue_size=_int(env, "KONDGE_QUEUE_SIZE", 256),
        unauthorised_calls=_choice(env, "KONDGE_UNAUTHORISED_CALLS", ("record", "charge")),
        workers=_workers(env),
        shed_after_us=_shed_after(env),
        pg_bin=Path(env["KONDGE_PG_BIN"]).resolve() if env.get("KONDGE_PG_BIN") else None,
    )


def _shed_after(env) -> int:
    """KONDGE_SHED_AFTER_MS (milliseconds, fractions allowed) in microseconds."""
    raw = env.get("KONDGE_SHED_AFTER_MS", "")
    if not raw:
        return 250_000
    try:
        value = int(Decimal(raw) * 1000)
    except InvalidOperation:
        value = -1
    if not 0 <= value <= 60_000_000:
        raise SystemExit(f"KONDGE_SHED_AFTER_MS={raw!r}: milliseconds from 0 (never shed) "
                         f"to 60000; fix or unset it")
    return value


def _workers(env) -> int:
    workers = _int(env, "KONDGE_WORKERS", 4)
    if not 1 <= workers <= 32:
        raise SystemExit(f"KONDGE_WORKERS={workers}: use 1 (one FreeRADIUS serves the "
                         f"gateways) to 32 (worker processes behind a front end)")
    return workers
