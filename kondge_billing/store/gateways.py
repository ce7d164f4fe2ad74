"""Gateways: the RADIUS clients, their secrets and their dialects.

This module owns the gateway table's SQL, the Gateway record and the
gateway directory the hook reads. Every change is an audit record, written
by the database (sql/functions/gateway_audited.sql) with the operator this
module names for the transaction. FreeRADIUS's client list is rendered from
the records by radius_config.py.

Every FreeRADIUS process of a server must serve a gateway the same way at
the same moment. So the hook does not read the gateway table itself: the
supervisor writes the table, at one revision (migration 0011), into one
file (`var/radius/gateways.json`, replaced atomically) before it changes
the front end's client list, and every worker's FileDirectory re-reads that
file as soon as it changes (a stat per request). `kondge gateways
add/modify/remove` asks the supervisor to apply the change at once and
returns when it is served (supervisor.apply_gateway_change).
"""

import ipaddress
import json
import os
import re
import threading
import time
from dataclasses import asdict, dataclass, field

from . import audit
from ..errors import UnknownGateway
from ..identifiers import LANGUAGE, NAME, NAME_RULE
from ..rating.numbers import NumberFormat

# The RADIUS dialects a gateway speaks (docs/gateways.md): its attribute names.
DIALECTS = ("cisco", "quintum", "generic")

SECRET = re.compile(r"^[!#-\[\]-~]{1,128}\Z")     # printable ASCII but space, double quote, backslash

COLUMNS = ("id, name, host(address) AS address, secret, dialect, message_authenticator, "
           "billed_leg, prepaid_billing_model, country_code, international_prefix, "
           "national_prefix, language_map, revision, accounting_start")


@dataclass(frozen=True)
class Gateway:
    id: int
    name: str
    address: str
    secret: str
    dialect: str
    message_authenticator: str
    billed_leg: str
    prepaid_billing_model: int
    country_code: str = ""
    international_prefix: str = "00"
    national_prefix: str = ""
    language_map: dict = field(default_factory=dict, compare=False, hash=False)
    revision: int = 0                  # the table's revision at this gateway's last change
    # what its accounting Start marks: 'setup' or 'answer'; None: the dialect's default
    accounting_start: str | None = None

    @property
    def number_format(self) -> NumberFormat:
        return NumberFormat(self.country_code, self.international_prefix, self.national_prefix)

    @property
    def start_marks_answer(self) -> bool:
        """Its accounting Start says the call was answered (so the server's
        time from Start to Stop is talk time): generic RFC gateways by
        default; Cisco and Quintum send their Start at set-up."""
        return (self.accounting_start or
                ("answer" if self.dialect == "generic" else "setup")) == "answer"

    def language(self, ours: str) -> str:
        """Our language code as this gateway's IVR names it."""
        return self.language_map.get(ours, ours)

    def public(self) -> dict:
        """What an operator sees: everything but the secret."""
        data = asdict(self)
        data["secret"] = "*" * 8
        return data


class GatewayError(ValueError):
    pass


# --- what a gateway's settings may hold ----------------------------------------
#
# One rule per stored setting, applied when `kondge gateways add` and
# `modify` write it, and again to every gateway the supervisor reads from
# the table before FreeRADIUS serves it (radius_config.render_gateways): a
# row written another way (psql, an older release) that breaks a rule is
# not served, and `kondge server status` says why, while every other
# gateway is served on. The database's CHECK constraints say the same for
# what they can check; these also hold where those were bypassed. A
# message never quotes a secret.

# an IVR's name for a language (a prompt set): no quote, comma, equals sign
# or other character a gateway's script could take for syntax
LANGUAGE_THEIRS = re.compile(r"^[A-Za-z0-9_.-]{1,16}\Z")


def _matches(pattern: re.Pattern):
    return lambda value: isinstance(value, str) and pattern.match(value) is not None


def _gateway_address(value) -> bool:
    """One host's IP address."""
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return False
    return not (ip.is_unspecified or ip.is_multicast)


def _language_map(value) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and LANGUAGE.match(k) and isinstance(v, str)
        and LANGUAGE_THEIRS.match(v) for k, v in value.items())


RULES = {
    "name": (_matches(NAME), f"name: {NAME_RULE}"),
    "address": (lambda v: isinstance(v, str) and _gateway_address(v),
                "address: one host's IP address (not 0.0.0.0, :: or a multicast address)"),
    "secret": (_matches(SECRET), "secret: 1 to 128 printable ASCII characters, no spaces, "
                                 "double quotes or backslashes"),
    "dialect": (lambda v: v in DIALECTS, f"dialect: one of {', '.join(DIALECTS)}"),
    "message_authenticator": (lambda v: v in ("required", "optional"),
                              "message authenticator: 'required' or 'optional'"),
    "billed_leg": (lambda v: v in ("originate", "answer"), "billed leg: 'originate' or 'answer'"),
    "prepaid_billing_model": (lambda v: type(v) is int and v in (0, 1),
                              "prepaid billing model: 0 or 1"),
    "country_code": (_matches(re.compile(r"^[0-9]{0,3}\Z")),
                     "country code: up to 3 digits ('' for a gateway that sends "
                     "international numbers)"),
    "international_prefix": (_matches(re.compile(r"^[0-9]{0,4}\Z")),
                             "international prefix: up to 4 digits"),
    "national_prefix": (_matches(re.compile(r"^[0-9]{0,2}\Z")),
                        "national prefix: up to 2 digits"),
    "language_map": (_language_map,
                     "language map: ours=theirs pairs like zh=ch (ours: 2 or 3 lower-case "
                     "letters; theirs: 1 to 16 letters, digits, '_', '.' or '-')"),
    "accounting_start": (lambda v: v in (None, "setup", "answer"),
                         "accounting start: 'setup' or 'answer'"),
}
# What `kondge gateways modify` changes (name, address and secret stay).
MODIFIABLE = ("country_code", "international_prefix", "national_prefix", "billed_leg",
              "accounting_start", "message_authenticator", "language_map",
              "prepaid_billing_model")


def _broken(values: dict) -> list[str]:
    return [RULES[key][1] for key, value in values.items() if not RULES[key][0](value)]


def check(name: str, address: str, secret: str, dialect: str,
          message_authenticator: str, billed_leg: str = "originate") -> list[str]:
    """Every problem with a new gateway's definition, for one clear message."""
    return _broken({"name": name, "address": address, "secret": secret, "dialect": dialect,
                    "message_authenticator": message_authenticator, "billed_leg": billed_leg})


def problems(gw: "Gateway") -> list[str]:
    """Every setting of a stored gateway that breaks its rule."""
    return _broken({key: getattr(gw, key) for key in RULES})


def label(gw: "Gateway") -> str:
    """How logs and reports name a gateway: its name, or, if the name breaks
    its rule, its id and the name escaped (a name could hold a newline)."""
    if RULES["name"][0](gw.name):
        return gw.name
    return f"#{gw.id} {ascii(gw.name)[:72]}"


def add(cur, name, address, secret, dialect, message_authenticator="optional",
        billed_leg="originate", prepaid_billing_model=1, operator: str | None = None) -> Gateway:
    problems = check(name, address, secret, dialect, message_authenticator, billed_leg)
    if problems:
        raise GatewayError("; ".join(problems))
    audit.acting(cur, operator)
    cur.execute("""SELECT name FROM kondge.gateway
                    WHERE (name = %s OR address = %s) AND removed_at IS NULL""",
                (name, address))
    clash = cur.fetchone()
    if clash:
        raise GatewayError(f"a gateway with this name or address exists already ({clash['name']}); "
                           "remove it first")
    cur.execute(
        f"""INSERT INTO kondge.gateway (name, address, secret, dialect, message_authenticator,
                                        billed_leg, prepaid_billing_model)
            VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {COLUMNS}""",
        (name, address, secret, dialect, message_authenticator, billed_leg,
         prepaid_billing_model))
    return Gateway(**cur.fetchone())


def remove(cur, name: str | None = None, gateway_id: int | None = None,
           operator: str | None = None) -> int | None:
    """Retire a gateway, by name or by id (its row stays for its call
    records): the revision, or None if no such gateway is active."""
    audit.acting(cur, operator)
    cur.execute("""UPDATE kondge.gateway SET removed_at = now()
                    WHERE (name = %s OR id = %s) AND removed_at IS NULL RETURNING revision""",
                (name, gateway_id))
    row = cur.fetchone()
    return row["revision"] if row else None


def all_gateways(cur, secrets: bool = True) -> list[Gateway]:
    """The gateways in service; secrets=False (what an operator's role may
    read) leaves their secrets empty."""
    columns = COLUMNS if secrets else COLUMNS.replace("secret", "'' AS secret")
    cur.execute(f"SELECT {columns} FROM kondge.gateway WHERE removed_at IS NULL ORDER BY name")
    return [Gateway(**row) for row in cur.fetchall()]


def removed_gateways(cur) -> list[Gateway]:
    """The latest removed gateway of each address no gateway holds now: its
    records still waiting in a spool are stored under it."""
    cur.execute(f"""SELECT DISTINCT ON (address) {COLUMNS} FROM kondge.gateway g
                     WHERE removed_at IS NOT NULL
                       AND NOT EXISTS (SELECT 1 FROM kondge.gateway a
                                        WHERE a.address = g.address AND a.removed_at IS NULL)
                     ORDER BY address, removed_at DESC""")
    return [Gateway(**row) for row in cur.fetchall()]


def table_revision(cur) -> int:
    """The gateway table's revision: it grows with every change."""
    cur.execute("SELECT coalesce(max(revision), 0) AS revision FROM kondge.gateway")
    return cur.fetchone()["revision"]


def table_state(cur) -> tuple[int, int]:
    """(revision, rows): what changes with every change to the gateway table,
    a row deleted with psql included (which leaves the revision as it is)."""
    cur.execute("SELECT coalesce(max(revision), 0) AS revision, count(*) AS n "
                "FROM kondge.gateway")
    row = cur.fetchone()
    return row["revision"], row["n"]


def modify(cur, name: str, operator: str | None = None, **changes) -> Gateway:
    """Change a gateway's number format, languages or billing settings."""
    unknown = [f"{key}: not a setting 'kondge gateways modify' changes"
               for key in changes if key not in MODIFIABLE]
    broken = unknown or _broken(changes)
    if broken:
        raise GatewayError("; ".join(broken))
    audit.acting(cur, operator)
    sets = ", ".join(f"{k} = %({k})s" for k in changes)
    values = {k: (json.dumps(v) if k == "language_map" else v) for k, v in changes.items()}
    cur.execute(f"""UPDATE kondge.gateway SET {sets}
                     WHERE name = %(_name)s AND removed_at IS NULL RETURNING {COLUMNS}""",
                dict(values, _name=name))
    row = cur.fetchone()
    if row is None:
        raise GatewayError(f"no gateway named {name}; see 'kondge gateways list'")
    return Gateway(**row)


class GatewayDirectory:
    """The gateway table as the CLI and the tests see it, by source address.

    Loaded from the database by `loader` and kept `max_age` seconds, or
    loaded again at once (at most once a second) when an address is not
    known. The FreeRADIUS hook uses FileDirectory instead.
    """

    def __init__(self, loader, max_age: float = 10.0):
        self._loader = loader
        self._max_age = max_age
        self._by_address: dict[str, Gateway] = {}
        self._loaded_at: float | None = None
        self._lock = threading.Lock()

    def _refresh(self):
        gateways = self._loader()
        self._by_address = {gw.address: gw for gw in gateways}
        self._loaded_at = time.monotonic()

    def get(self, address: str) -> Gateway:
        if self._loaded_at is None:
            with self._lock:
                self._refresh()
        age = time.monotonic() - self._loaded_at
        if age > self._max_age or (address not in self._by_address and age > 1.0):
            with self._lock:
                self._refresh()
        try:
            return self._by_address[address]
        except KeyError:
            raise UnknownGateway(f"no gateway has the address {address!r}") from None

    def for_accounting(self, address: str) -> Gateway:
        return self.get(address)


# --- the directory file the supervisor writes and the hook reads ---------------

def _to_json(gw: Gateway) -> dict:
    data = asdict(gw)
    del data["secret"]
    return data


def write_directory(path, revision: int, active, removed=(), skipped=()) -> None:
    """Write the gateways (no secrets) at `revision` into `path`, atomically,
    with those not served and why (radius_config.Skipped: no secrets either)."""
    text = json.dumps({"revision": revision,
                       "gateways": [_to_json(gw) for gw in active],
                       "removed": [_to_json(gw) for gw in removed],
                       "skipped": [asdict(item) for item in skipped]}, indent=1)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def read_revision(path) -> int | None:
    """The revision a directory file holds, or None if there is none."""
    try:
        with open(path) as f:
            return int(json.load(f)["revision"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_skipped(path) -> list[dict]:
    """The gateways a directory file says are not served, with why."""
    try:
        with open(path) as f:
            return list(json.load(f).get("skipped", ()))
    except (OSError, ValueError, TypeError, AttributeError):
        return []


class FileDirectory:
    """The hook's gateways: the directory file, re-read whenever it changes.

    A stat per look-up (about a microsecond) tells whether the supervisor
    replaced the file; all the processes of a server then serve the new
    revision from their next request on. The database is not needed, so an
    answer that depends only on the gateway (code 8 while the database is
    down) is still given.
    """

    def __init__(self, path):
        self.path = str(path)
        self._key = None
        self._by_address: dict[str, Gateway] = {}
        self._removed: dict[str, Gateway] = {}
        self.revision: int | None = None
        self._lock = threading.Lock()

    def _current(self):
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise UnknownGateway(f"the gateway list {self.path} cannot be read ({exc.strerror}); "
                                 "the supervisor writes it: start the service with "
                                 "'kondge server start'") from None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._key:
            with self._lock:
                if key != self._key:
                    self._load(key)

    def _load(self, key):
        try:
            with open(self.path) as f:
                data = json.load(f)
            active = {g["address"]: Gateway(secret="", **g) for g in data["gateways"]}
            removed = {g["address"]: Gateway(secret="", **g) for g in data.get("removed", ())}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UnknownGateway(f"the gateway list {self.path} is unreadable ({exc}); the "
                                 "supervisor rewrites it at its next gateway check") from None
        self._by_address, self._removed = active, removed
        self.revision, self._key = data.get("revision"), key

    def get(self, address: str) -> Gateway:
        self._current()
        try:
            return self._by_address[address]
        except KeyError:
            raise UnknownGateway(f"no gateway has the address {address!r} "
                                 f"(gateway list revision {self.revision})") from None

    def for_accounting(self, address: str) -> Gateway:
        """A gateway's accounting is stored even after it was removed (a
        record that waited in the spool, a late Stop)."""
        self._current()
        found = self._by_address.get(address) or self._removed.get(address)
        if found is None:
            raise UnknownGateway(f"no gateway has (or had) the address {address!r} "
                                 f"(gateway list revision {self.revision})")
        return found
