"""FreeRADIUS configuration written at run time: the one writer of its syntax.

The static raddb is freeradius/; what depends on the gateway table or on a
start is rendered here and written under var/radius:

- clients.conf of the process the gateways talk to: one client per gateway
  (`render_gateways`); a gateway added to a running server goes in alone
  (its section, through radmin's `add client file`);
- clients.conf of a worker: the front end is its only client, whose
  Access-Requests must carry a Message-Authenticator (`frontend_client`);
- the front end's workers.conf: two home servers per worker (its calls,
  its new logins), their two pools and the realms that name them
  (`workers_conf`).

Every string value is written with `string`: FreeRADIUS reads it back
exactly as given, or it is refused. FreeRADIUS expands `${...}` and
`$ENV{...}` in bare words and in double-quoted strings, and no escape stops
that (a backslash is kept as it is, then the expansion happens), so a
secret such as `a${b}` would stop the server from starting and one holding
`$ENV{HOME}` would silently become another secret. Single-quoted strings
are not expanded: inside them `\\'` is a quote and every other character
stands for itself, except that a backslash before a quote or at the end
could not be told from an escape; so a quote is escaped, and a backslash,
a control character or anything outside printable ASCII is refused, as is
a value longer than any this service writes (MAX_LENGTH: FreeRADIUS
reads a configuration line into a fixed buffer).

One gateway that cannot be written never costs the others: every gateway
is checked against the rules `kondge gateways add` and `modify` apply
(gateways.RULES; a row written with psql may break them) and rendered
alone; one that fails, or that repeats another's address, is left out
of the client list, with the reason (`Skipped`), which the supervisor
logs and `kondge server status` reports.
"""

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..store import gateways
from ..errors import StackError

# Printable ASCII without the backslash: what a single-quoted string carries as itself.
LITERAL = re.compile(r"^[ -\[\]-~]*\Z")
# The longest string written (a gateway's secret is at most 128 characters).
MAX_LENGTH = 255
# What names a section (client, home_server): a bare word of these.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z")

# A gateway's Message-Authenticator setting (gateways.check): must its
# Access-Requests carry one (FreeRADIUS's require_message_authenticator)?
REQUIRE_MESSAGE_AUTHENTICATOR = {"required": True, "optional": False}

FRONTEND_CLIENT = "kondge-frontend"
WORKERS_POOL = "kondge_workers"          # the pool and the realm (policy.d/kondge)
LOGINS_POOL = "kondge_logins"            # new logins: each worker's few in flight


class RadiusConfigError(StackError):
    """A value FreeRADIUS would not read back as it was given."""


def string(value: str, what: str = "a value") -> str:
    """`value` as a FreeRADIUS single-quoted string, read back unchanged.
    The refusal names `what`, never the value (it may be a secret)."""
    if not isinstance(value, str) or not LITERAL.match(value):
        raise RadiusConfigError(f"{what} holds a character FreeRADIUS would not read as "
                                "itself (a backslash, a control character or one outside "
                                "printable ASCII)")
    if len(value) > MAX_LENGTH:
        raise RadiusConfigError(f"{what} is longer than {MAX_LENGTH} characters")
    return "'" + value.replace("'", "\\'") + "'"


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise RadiusConfigError(f"{value!r} is not an IP address") from None


def _name(value: str) -> str:
    """A section's name (a client, a home server): a bare word."""
    if not isinstance(value, str) or not NAME.match(value):
        raise RadiusConfigError(f"{value!r} cannot name a section")
    return value


def _secret(value: str) -> str:
    if not value:
        raise RadiusConfigError("the secret is empty")
    return string(value, "the secret")


def client(name: str, address: str, secret: str, shortname: str,
           require_message_authenticator: bool, nas_type: str | None = None,
           proto: str | None = None) -> str:
    """One `client` section: a RADIUS client FreeRADIUS answers."""
    lines = [f"client {_name(name)} {{",
             f"\tipaddr = {_address(address)}",
             f"\tsecret = {_secret(secret)}",
             f"\tshortname = {string(shortname, 'the shortname')}"]
    if nas_type is not None:
        lines.append(f"\tnas_type = {string(nas_type, 'the nas_type')}")
    lines.append("\trequire_message_authenticator = "
                 f"{'yes' if require_message_authenticator else 'no'}")
    if proto is not None:
        lines.append(f"\tproto = {proto}")
    return "\n".join(lines) + "\n}\n"


def gateway_client(gw) -> str:
    """A gateway (gateways.Gateway) as a client: named gw<id>, its name as
    shortname (the hook's Kondge-Gateway-Name), its dialect as nas_type
    (Kondge-Gateway-Dialect). RadiusConfigError, naming the gateway and
    every rule it breaks (never its secret), if it cannot be served."""
    where = f"gateway {gateways.label(gw)}"
    broken = gateways.problems(gw)
    if broken:
        raise RadiusConfigError(f"{where}: {'; '.join(broken)}")
    if not isinstance(gw.id, int) or isinstance(gw.id, bool):
        raise RadiusConfigError(f"{where}: its id {gw.id!r} is no number")
    required = REQUIRE_MESSAGE_AUTHENTICATOR[gw.message_authenticator]
    try:
        return client(f"gw{gw.id}", gw.address, gw.secret, gw.name, required,
                      nas_type=gw.dialect)
    except RadiusConfigError as exc:
        raise RadiusConfigError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class Skipped:
    """A gateway left out of the client list, and why (no secret in it)."""
    id: int
    gateway: str                # gateways.label: its name, or its id and escaped name
    address: str
    problem: str

    def line(self) -> str:
        """What the log and `kondge server status` say, with what to do."""
        return (f"gateway {self.gateway} ({self.address}) is not served: {self.problem}; "
                f"remove it ('kondge gateways remove --id {self.id}') and add it again as "
                "it should be, or mend its row; every other gateway is served")


@dataclass(frozen=True)
class Rendered:
    """The client list of the process the gateways talk to: a section per
    gateway served, by address, and the gateways left out."""
    sections: dict = field(default_factory=dict)
    skipped: tuple = ()

    @property
    def text(self) -> str:
        """clients.conf."""
        return ("# Rendered from the gateway table by Kondge billing; do not edit.\n"
                + "".join(self.sections.values()))


def render_gateways(gateway_list) -> Rendered:
    """Each gateway alone, in order: those FreeRADIUS can serve exactly, and
    those it cannot (a broken rule, or an address an earlier one has)."""
    sections, owners, skipped = {}, {}, []
    for gw in gateway_list:
        where = gateways.label(gw)
        address = str(gw.address)
        try:
            section = gateway_client(gw)
        except RadiusConfigError as exc:
            problem = str(exc).removeprefix(f"gateway {where}: ")
            skipped.append(Skipped(gw.id, where, ascii(address)[1:-1][:64], problem))
            continue
        if address in sections:
            skipped.append(Skipped(gw.id, where, address,
                                   f"gateway {owners[address]} has this address"))
            continue
        sections[address], owners[address] = section, where
    return Rendered(sections, tuple(skipped))


def frontend_client(secret: str) -> str:
    """clients.conf of a worker: the front end, on loopback, is its only
    client, and an Access-Request without a Message-Authenticator made with
    `secret` is dropped, so another local process cannot pose as the front
    end (policy.d/kondge, kondge_identify_gateway). The front end adds one
    to every Access-Request it proxies."""
    return client(FRONTEND_CLIENT, "127.0.0.1", secret, FRONTEND_CLIENT, True, proto="*")


# How the front end treats its workers (see /etc/freeradius/3.0/proxy.conf
# for each item). A worker answers in milliseconds; one that has not
# answered three requests in response_window is a zombie, used only if no
# other worker is alive, and alive again as soon as it answers a
# Status-Server (sent every check_interval, the least FreeRADIUS allows;
# zombie_period is longer, so that it is not declared dead first). A
# worker the supervisor restarts is declared alive at once (radmin).
WORKER_HOME_SERVER = """home_server {name} {{
	type = {type}
	ipaddr = 127.0.0.1
	port = {port}
	proto = {proto}
	secret = {secret}
	response_window = 5
	response_timeouts = 3
	zombie_period = 20
	status_check = status-server
	check_interval = 6
	check_timeout = 2
	num_answers_to_alive = 3
	max_outstanding = {outstanding}
	limit {{
		max_connections = 16
	}}
}}
"""

POOL_TYPES = ("load-balance", "keyed-balance", "client-balance", "client-port-balance",
              "fail-over")
# Outstanding requests a home server may have: FreeRADIUS's own bounds.
OUTSTANDING_MIN, OUTSTANDING_MAX = 8, 65536


def worker_ports(port: int) -> dict[str, int]:
    """A worker's loopback ports from the first of three: new logins (auth),
    the calls it admitted (auth: stage 2) and accounting."""
    return {"logins": port, "calls": port + 1, "acct": port + 2}


# How the front end reaches each of a worker's ports. FreeRADIUS queues a
# request by the type of the listener it came in on and serves the auth
# queue before the acct queue: on a UDP acct listener, the Starts and
# Stops of the calls a worker admitted wait behind every new login once it
# is past its capacity, until the gateways give up on them. Over TCP a
# listener may be of type auth+acct (over UDP it may not), and what it
# receives, Access- or Accounting-Request, is queued as auth: the stage 2s,
# the accounting and the new logins of a worker are then served in the
# order they came. A worker that falls behind keeps its new logins
# unanswered longer, so the front end's limit on them (logins_in_flight)
# turns the excess away before it reaches the worker.
WORKER_PROTOS = {"logins": "udp", "calls": "tcp", "acct": "tcp"}

WORKER_TCP_LISTENER = """listen {{
	type = auth+acct
	proto = tcp
	ipaddr = 127.0.0.1
	port = {port}
}}
"""


def worker_listeners(port: int) -> str:
    """A worker's TCP listeners for the calls it admitted and for accounting
    (its own listen-calls.conf; sites-available/kondge includes it): the
    home server of its calls (type auth+acct over TCP) sends Access-Requests
    to the calls port and Accounting-Requests to the next one."""
    ports = worker_ports(port)
    return "".join(WORKER_TCP_LISTENER.format(port=ports[kind]) for kind in ("calls", "acct"))


def workers_conf(homes, secret: str, pool_type: str = "load-balance",
                 logins_in_flight: int = 8) -> str:
    """The front end's workers.conf. For each (name, port) in `homes` two home
    servers (worker_ports): `name` takes the calls already admitted (stage 2
    on port + 1, accounting on port + 2, over TCP: WORKER_PROTOS) without a
    limit, `name-logins` takes new logins (port, UDP), at most
    `logins_in_flight` unanswered at a time. A
    pool of each kind, and realms that name them (policy.d/kondge:
    kondge_to_workers): a new login that finds every worker at its limit is
    not answered, so a worker's queue never fills with logins while the
    calls it admitted wait."""
    if pool_type not in POOL_TYPES:
        raise RadiusConfigError(f"pool type {pool_type!r}: one of {', '.join(POOL_TYPES)}")
    if not (isinstance(logins_in_flight, int)
            and OUTSTANDING_MIN <= logins_in_flight <= OUTSTANDING_MAX):
        raise RadiusConfigError(f"logins in flight {logins_in_flight!r}: {OUTSTANDING_MIN} to "
                                f"{OUTSTANDING_MAX} a worker")
    homes = list(homes)
    for _, port in homes:
        if not (isinstance(port, int) and 0 < port < 65533):
            raise RadiusConfigError(f"home server port {port!r}: 1 to 65532 (a worker has "
                                    f"three: logins, calls, accounting)")
    servers, calls, logins = [], [], []
    for name, port in homes:
        name = _name(name)
        ports = worker_ports(port)
        servers.append(WORKER_HOME_SERVER.format(
            name=name, type="auth+acct", port=ports["calls"], secret=_secret(secret),
            outstanding=OUTSTANDING_MAX, proto=WORKER_PROTOS["calls"]))
        servers.append(WORKER_HOME_SERVER.format(
            name=f"{name}-logins", type="auth", port=ports["logins"], secret=_secret(secret),
            outstanding=logins_in_flight, proto=WORKER_PROTOS["logins"]))
        calls.append(f"\thome_server = {name}\n")
        logins.append(f"\thome_server = {name}-logins\n")
    return ("".join(servers)
            + f"home_server_pool {WORKERS_POOL} {{\n\ttype = {pool_type}\n{''.join(calls)}}}\n"
            + f"home_server_pool {LOGINS_POOL} {{\n\ttype = {pool_type}\n{''.join(logins)}}}\n"
            + f"realm {WORKERS_POOL} {{\n\tauth_pool = {WORKERS_POOL}\n"
              f"\tacct_pool = {WORKERS_POOL}\n\tnostrip\n}}\n"
            + f"realm {LOGINS_POOL} {{\n\tauth_pool = {LOGINS_POOL}\n\tnostrip\n}}\n")


def write_private(path: Path, text: str):
    """Write a file that holds RADIUS secrets, atomically: its owner writes it,
    the group of its directory (the FreeRADIUS user's, privileges.py) reads
    it, nobody else does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchown(f.fileno(), -1, path.parent.stat().st_gid)
        os.fchmod(f.fileno(), 0o640)
        f.write(text)
    tmp.replace(path)


# The most a process may ask for a socket's receive buffer (the kernel
# grants twice what is asked, up to twice this).
RMEM_MAX = "/proc/sys/net/core/rmem_max"


def sysctl_ints(path: str) -> tuple[int, ...] | None:
    """The whole numbers of a kernel setting's file under /proc/sys, or None
    where it cannot be read."""
    try:
        with open(path) as f:
            return tuple(map(int, f.read().split()))
    except (OSError, ValueError):
        return None


def kernel_rmem_max(path: str = RMEM_MAX) -> int | None:
    """net.core.rmem_max, or None where it cannot be read."""
    values = sysctl_ints(path)
    return values[0] if values else None


def receive_buffer_note(wanted: int, rmem_max: int | None) -> str | None:
    """What `kondge server start` tells the operator when the kernel would
    give the gateways' sockets less than KONDGE_RECV_BUFFER; None if it
    gives all of it (or cannot be asked)."""
    if rmem_max is None or rmem_max >= wanted:
        return None
    return (f"the kernel gives a socket at most {rmem_max} bytes of receive buffer "
            f"(net.core.rmem_max), less than KONDGE_RECV_BUFFER={wanted}: a burst of "
            f"gateway packets beyond it is dropped before FreeRADIUS reads it. Raise it "
            f"with: sysctl -w net.core.rmem_max={wanted} (and a line in /etc/sysctl.d/ "
            f"to keep it after a reboot)")
