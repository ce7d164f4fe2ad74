"""Gateways: the RADIUS clients, their secrets and their dialects.

This module owns the gateway table's SQL, renders FreeRADIUS's client list
from it, and keeps the hook's in-process directory of gateways.
"""

import ipaddress
import json
import re
import threading
import time
from dataclasses import asdict, dataclass, field

from .attrs import DIALECTS
from .errors import UnknownGateway
from .numbers import NumberFormat

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
SECRET = re.compile(r"^[!#-\[\]-~]{1,128}$")     # printable, no quote or backslash

COLUMNS = ("id, name, host(address) AS address, secret, dialect, message_authenticator, "
           "billed_leg, prepaid_billing_model, country_code, international_prefix, "
           "national_prefix, language_map")


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

    @property
    def number_format(self) -> NumberFormat:
        return NumberFormat(self.country_code, self.international_prefix, self.national_prefix)

    def language(self, ours: str) -> str:
        """Our language code as this gateway's IVR names it."""
        return self.language_map.get(ours, ours)

    def client_conf(self) -> str:
        """This gateway's FreeRADIUS client definition."""
        return (f"client gw{self.id} {{\n"
                f"\tipaddr = {self.address}\n"
                f"\tsecret = \"{self.secret}\"\n"
                f"\tshortname = \"{self.name}\"\n"
                f"\tnas_type = \"{self.dialect}\"\n"
                f"\trequire_message_authenticator = "
                f"{'yes' if self.message_authenticator == 'required' else 'no'}\n"
                f"}}\n")

    def public(self) -> dict:
        """What an operator sees: everything but the secret."""
        data = asdict(self)
        data["secret"] = "*" * 8
        return data


class GatewayError(ValueError):
    pass


def check(name: str, address: str, secret: str, dialect: str,
          message_authenticator: str, billed_leg: str = "originate") -> list[str]:
    """Every problem with a gateway definition, for one clear message."""
    problems = []
    if not NAME.match(name or ""):
        problems.append("name: letters, digits, '.', '_' or '-', up to 63, starting with a letter or digit")
    try:
        ip = ipaddress.ip_address(address)
        if ip.is_unspecified or ip.is_multicast:
            problems.append(f"address: {address} cannot be a gateway's address")
    except ValueError:
        problems.append(f"address: {address!r} is not an IP address (a gateway is one host)")
    if not SECRET.match(secret or ""):
        problems.append("secret: 1 to 128 printable ASCII characters, no spaces, quotes or backslashes")
    if dialect not in DIALECTS:
        problems.append(f"dialect: one of {', '.join(DIALECTS)}")
    if message_authenticator not in ("required", "optional"):
        problems.append("message authenticator: 'required' or 'optional'")
    if billed_leg not in ("originate", "answer"):
        problems.append("billed leg: 'originate' or 'answer'")
    return problems


def add(cur, name, address, secret, dialect, message_authenticator="optional",
        billed_leg="originate", prepaid_billing_model=1) -> Gateway:
    problems = check(name, address, secret, dialect, message_authenticator, billed_leg)
    if problems:
        raise GatewayError("; ".join(problems))
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


def remove(cur, name: str) -> bool:
    cur.execute("""UPDATE kondge.gateway SET removed_at = now()
                    WHERE name = %s AND removed_at IS NULL""", (name,))
    return cur.rowcount == 1


def all_gateways(cur) -> list[Gateway]:
    cur.execute(f"SELECT {COLUMNS} FROM kondge.gateway WHERE removed_at IS NULL ORDER BY name")
    return [Gateway(**row) for row in cur.fetchall()]


def for_call_path(cur) -> list[Gateway]:
    """The gateways as the hook sees them (kondge.radius_gateways): no secrets."""
    cur.execute("SELECT * FROM kondge.radius_gateways()")
    return [Gateway(secret="", **row) for row in cur.fetchall()]


def render_clients(gateways) -> str:
    """FreeRADIUS client definitions for the gateways (clients.conf)."""
    return "# Rendered from the gateway table by Kondge billing; do not edit.\n" + "".join(
        gw.client_conf() for gw in gateways)


def modify(cur, name: str, **changes) -> Gateway:
    """Change a gateway's number format, languages or billing settings."""
    allowed = {"country_code": r"^[0-9]{0,3}$", "international_prefix": r"^[0-9]{0,4}$",
               "national_prefix": r"^[0-9]{0,2}$", "billed_leg": r"^(originate|answer)$",
               "message_authenticator": r"^(required|optional)$", "language_map": None,
               "prepaid_billing_model": None}
    problems = [f"{k}: {v!r} is not allowed" for k, v in changes.items()
                if k not in allowed or (allowed[k] and not re.match(allowed[k], str(v)))]
    if "language_map" in changes and not all(
            re.match(r"^[a-z]{2,3}$", k) and isinstance(v, str) and 0 < len(v) <= 16
            for k, v in changes["language_map"].items()):
        problems.append("language map: ours=theirs pairs like zh=ch")
    if problems:
        raise GatewayError("; ".join(problems))
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
    """The hook's view of the gateway table, by source address.

    Refreshed every `max_age` seconds and at once (at most once a second)
    when an address is not known, so a new gateway is served without delay
    and the refresh costs one small query now and then.
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
