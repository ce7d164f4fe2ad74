"""Settings, read once from the environment, with local defaults.

Every path defaults to a place inside the project folder, so a fresh
checkout runs without configuration. A test or a second instance sets
KONDGE_VAR (and the ports) to run beside the first.

The KONDGE_* variables, their defaults and meanings are in one table:
docs/operations.md, Settings. tests/unit/test_settings_doc.py checks that
table against load() and against every KONDGE_* name the package, the hook
and the FreeRADIUS configuration use: a setting added here needs its row
there.
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
class PinPolicy:
    """The KONDGE_PIN_* limits on wrong PINs. `kondge server start` writes them
    to the database (kondge_billing/calls/pin_guard.py), where the call path reads
    them. 0 tries: not counted; card_cooldown 0: until `kondge cards unlock`."""

    card_tries: int = 5
    card_cooldown: int = 900          # seconds; doubled at each further lock in a row
    caller_tries: int = 10
    caller_window: int = 3600         # seconds
    gateway_tries: int = 100
    gateway_window: int = 600         # seconds


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
    answered_days: int
    auth_when_db_down: str
    queue_size: int
    unauthorised_calls: str
    workers: int
    radius_user: str = ""             # KONDGE_RADIUS_USER; "": whoever starts the service
    operator_users: tuple = ()        # KONDGE_OPERATOR_USERS: OS users who may be kondge_operator
    shed_after_us: int = 250_000      # KONDGE_SHED_AFTER_MS, in microseconds
    logins_in_flight: int = 8         # KONDGE_LOGINS_IN_FLIGHT: a worker's unanswered new logins
    recv_buffer: int = 4 << 20        # KONDGE_RECV_BUFFER: bytes a gateway-facing socket holds
    pg_bin: Path | None = None        # KONDGE_PG_BIN; None: found (cluster.pg_bin)
    pin_policy: PinPolicy = PinPolicy()
    unknown_card_code: int = 2        # KONDGE_UNKNOWN_CARD_CODE: 2 (as a wrong PIN) or 1
    web_listen: str = "127.0.0.1"     # KONDGE_WEB_LISTEN: the portal's address
    web_port: int = 8080              # KONDGE_WEB_PORT; 0: no portal
    web_dsn: str = ""                 # KONDGE_WEB_DSN: what the portal connects as
    web_user: str = ""                # KONDGE_WEB_USER; "": whoever starts the service
    web_proxies: int = 0              # KONDGE_WEB_PROXIES: reverse proxies in front of it
    web_threads: int = 8              # KONDGE_WEB_THREADS: requests served at once
    backup_repo: Path | None = None   # KONDGE_BACKUP_REPO; None: $KONDGE_VAR/backup
    wal_archive: bool = True          # KONDGE_WAL_ARCHIVE: on (every WAL file to the repository)
    database: str = "private"         # KONDGE_DATABASE: private (run under var/pg) or external
    ha_pg_port: int = 5440            # KONDGE_HA_PG_PORT: the HA monitor's; the nodes' follow it
    ha_listen: tuple = ("127.0.0.1", "127.0.0.2")   # KONDGE_HA_LISTEN: the two RADIUS sets

    @property
    def private_cluster(self) -> bool:
        """The supervisor runs the database's cluster itself (under var/pg)."""
        return self.database == "private"

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
    def web_run_dir(self) -> Path:
        return self.var / "web"

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


def _default_radius_user() -> str:
    """FreeRADIUS runs as its own user (Debian's package makes 'freerad') when
    root starts the service; a user who starts it runs it as themself."""
    return "freerad" if os.geteuid() == 0 else ""


def _names(env, name) -> tuple:
    return tuple(n for n in (env.get(name) or "").replace(",", " ").split() if n)


def load(env=None) -> Settings:
    env = os.environ if env is None else env
    home = Path(env.get("KONDGE_HOME") or PROJECT_HOME).resolve()
    var = Path(env.get("KONDGE_VAR") or home / "var").resolve()
    pg_port = _int(env, "KONDGE_PG_PORT", 5433)
    private = f"host={var / 'pg' / 'run'} port={pg_port} dbname=kondge user="
    dsn = env.get("KONDGE_DSN") or private + (env.get("KONDGE_DB_USER") or "kondge")
    radius_dsn = env.get("KONDGE_RADIUS_DSN") or (
        private + "kondge_radius" if not env.get("KONDGE_DSN") else env["KONDGE_DSN"])
    web_dsn = env.get("KONDGE_WEB_DSN") or (
        private + "kondge_web" if not env.get("KONDGE_DSN") else env["KONDGE_DSN"])
    return Settings(
        home=home,
        var=var,
        pg_port=pg_port,
        dsn=dsn,
        radius_dsn=radius_dsn,
        listen=env.get("KONDGE_LISTEN") or "127.0.0.1",
        radius_user=env.get("KONDGE_RADIUS_USER", _default_radius_user()),
        operator_users=_names(env, "KONDGE_OPERATOR_USERS"),
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
        answered_days=_int(env, "KONDGE_ANSWERED_DAYS", 2),
        auth_when_db_down=_choice(env, "KONDGE_AUTH_WHEN_DB_DOWN", ("silent", "reject")),
        queue_size=_int(env, "KONDGE_QUEUE_SIZE", 256),
        unauthorised_calls=_choice(env, "KONDGE_UNAUTHORISED_CALLS", ("record", "charge")),
        workers=_workers(env),
        shed_after_us=_shed_after(env),
        logins_in_flight=_logins_in_flight(env),
        recv_buffer=_recv_buffer(env),
        pg_bin=Path(env["KONDGE_PG_BIN"]).resolve() if env.get("KONDGE_PG_BIN") else None,
        pin_policy=_pin_policy(env),
        unknown_card_code=int(_choice(env, "KONDGE_UNKNOWN_CARD_CODE", ("2", "1"))),
        web_listen=env.get("KONDGE_WEB_LISTEN") or "127.0.0.1",
        web_port=_bounded(env, "KONDGE_WEB_PORT", 8080, 0, 65535),
        web_dsn=web_dsn,
        web_user=env.get("KONDGE_WEB_USER", _default_web_user()),
        web_proxies=_bounded(env, "KONDGE_WEB_PROXIES", 0, 0, 8),
        web_threads=_bounded(env, "KONDGE_WEB_THREADS", 8, 1, 256),
        backup_repo=Path(env.get("KONDGE_BACKUP_REPO") or var / "backup").resolve(),
        wal_archive=_choice(env, "KONDGE_WAL_ARCHIVE", ("on", "off")) == "on",
        database=_choice(env, "KONDGE_DATABASE", ("private", "external")),
        ha_pg_port=_int(env, "KONDGE_HA_PG_PORT", 5440),
        ha_listen=_ha_listen(env),
    )


def _bounded(env, name, default, least, most) -> int:
    value = _int(env, name, default)
    if not least <= value <= most:
        raise SystemExit(f"{name}={value}: use a whole number from {least} to {most}; "
                         f"fix or unset it")
    return value


def _default_web_user() -> str:
    """The web portal runs as Debian's 'www-data' when root starts the
    service; a user who starts it runs it as themself."""
    return "www-data" if os.geteuid() == 0 else ""


def _pin_policy(env) -> PinPolicy:
    """The KONDGE_PIN_* settings: tries from 0 (not counted), seconds from 1
    (a card's cool-down from 0: until unlocked), each at most 10 years."""
    values = {}
    for field, name, least in (
            ("card_tries", "KONDGE_PIN_CARD_TRIES", 0),
            ("card_cooldown", "KONDGE_PIN_CARD_COOLDOWN", 0),
            ("caller_tries", "KONDGE_PIN_CALLER_TRIES", 0),
            ("caller_window", "KONDGE_PIN_CALLER_WINDOW", 1),
            ("gateway_tries", "KONDGE_PIN_GATEWAY_TRIES", 0),
            ("gateway_window", "KONDGE_PIN_GATEWAY_WINDOW", 1)):
        value = _int(env, name, getattr(PinPolicy, field))
        if not least <= value <= 315_360_000:
            raise SystemExit(f"{name}={value}: use a whole number from {least} to 315360000; "
                             f"fix or unset it")
        values[field] = value
    return PinPolicy(**values)


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


def _int_within(env, name, default, low, high, what) -> int:
    """A whole number from low to high; `what` says what the bounds mean."""
    value = _int(env, name, default)
    if not low <= value <= high:
        raise SystemExit(f"{name}={value}: use {low} {what[0]} to {high} {what[1]}")
    return value


def _logins_in_flight(env) -> int:
    return _int_within(env, "KONDGE_LOGINS_IN_FLIGHT", 8, 8, 65536,
                       ("(FreeRADIUS's least)", "(new logins a worker may have unanswered; "
                        "the front end answers none beyond)"))


def _recv_buffer(env) -> int:
    return _int_within(env, "KONDGE_RECV_BUFFER", 4 << 20, 65536, 1 << 28,
                       ("bytes", "bytes (the receive buffer of each socket the gateways "
                        "send to; the kernel caps it at net.core.rmem_max)"))


def _workers(env) -> int:
    return _int_within(env, "KONDGE_WORKERS", 4, 1, 32,
                       ("(one FreeRADIUS serves the gateways)",
                        "(worker processes behind a front end)"))


def _ha_listen(env) -> tuple:
    addresses = _names(env, "KONDGE_HA_LISTEN") or ("127.0.0.1", "127.0.0.2")
    if len(addresses) != 2 or len(set(addresses)) != 2:
        raise SystemExit(f"KONDGE_HA_LISTEN={env.get('KONDGE_HA_LISTEN')!r}: name two "
                         "different addresses, the primary and the secondary RADIUS server's")
    return addresses
