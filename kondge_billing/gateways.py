"""Gateways: the RADIUS clients, their secrets and their dialects.

This module owns the gateway table's SQL, renders FreeRADIUS's client list
from it, and keeps the hook's in-process directory of gateways.
"""

import ipaddress
import re
import threading
import time
from dataclasses import asdict, dataclass

from .attrs import DIALECTS
from .errors import UnknownGateway

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
SECRET = re.compile(r"^[!#-\[\]-~]{1,128}$")     # printable, no quote or backslash

COLUMNS = ("id, name, host(address) AS address, secret, dialect, message_authenticator, "
           "billed_leg, prepaid_billing_model")


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


def render_clients(gateways) -> str:
    """FreeRADIUS client definitions for the gateways (clients.conf)."""
    out = ["# Rendered from the gateway table by Kondge billing; do not edit.\n"]
    for gw in gateways:
        out.append(
            f"client gw{gw.id} {{\n"
            f"\tipaddr = {gw.address}\n"
            f"\tsecret = \"{gw.secret}\"\n"
            f"\tshortname = \"{gw.name}\"\n"
            f"\tnas_type = \"{gw.dialect}\"\n"
            f"\trequire_message_authenticator = "
            f"{'yes' if gw.message_authenticator == 'required' else 'no'}\n"
            f"}}\n")
    return "".join(out)


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
