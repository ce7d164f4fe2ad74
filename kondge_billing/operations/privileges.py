"""Who runs what: the OS user FreeRADIUS runs as, what it may read and write,
and which OS user may be which database role.

Started by root, the service runs FreeRADIUS as its own user
(KONDGE_RADIUS_USER, by default 'freerad', which Debian's freeradius package
makes). A hook made to misbehave then holds what that user holds: it reads
its configuration, the PIN key and the gateway directory, writes its spool,
quarantine, answered journal, control socket and log, and nothing else of
the service. The database authenticates every local connection by the OS
user behind it (peer, with the map below): that user may be kondge_radius
and no other role, so the role's limits bind the process that uses it.

Each process's run directory is root's, group the FreeRADIUS user, mode
1770: FreeRADIUS creates its socket and markers there, and the sticky bit
keeps it from replacing the client lists root writes beside them.
"""

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .. import config
from .console import say
from ..errors import StackError

RUN_DIR_MODE = 0o1770
# What FreeRADIUS writes inside its run directory (spool.py, mods-available/).
WRITABLE = ("spool", "quarantine", "answered")


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int


def radius_account(s: config.Settings) -> Account | None:
    """The user FreeRADIUS runs as, or None: as whoever starts the service."""
    return _account(s.radius_user, "KONDGE_RADIUS_USER", "FreeRADIUS",
                    "install the freeradius package (make setup), which makes 'freerad'")


def web_account(s: config.Settings) -> Account | None:
    """The user the web portal runs as (KONDGE_WEB_USER, by default Debian's
    'www-data' when root starts the service), or None: as whoever starts it."""
    return _account(s.web_user, "KONDGE_WEB_USER", "the web portal",
                    "Debian makes 'www-data' (package base-passwd)")


def _account(name: str, setting: str, what: str, hint: str) -> Account | None:
    me = pwd.getpwuid(os.geteuid()).pw_name
    if not name or name == me:
        return None
    if os.geteuid() != 0:
        raise StackError(f"{setting}={name}: only root can run {what} as another "
                         f"user; start the service as root, or unset it to run as {me}")
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise StackError(f"{setting}={name}: there is no such user; {hint}, or name "
                         "another user") from None
    return Account(name, entry.pw_uid, entry.pw_gid)


def popen_identity(account: Account | None) -> dict:
    """subprocess.Popen's arguments that start a process as `account`."""
    if account is None:
        return {}
    return {"user": account.uid, "group": account.gid, "extra_groups": []}


def make_traversable(path: Path, who: str):
    """Another user must reach `path`: add o+x where a parent lacks it."""
    for parent in reversed(path.parents):
        mode = parent.stat().st_mode
        if not mode & 0o001:
            say(f"allowing the {who} user through {parent} (chmod o+x)")
            parent.chmod(mode | 0o001)


def _own(path: Path, uid: int, gid: int, mode: int):
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def prepare_run_dir(run_dir: Path, account: Account | None):
    """A process's run directory, and what FreeRADIUS writes in it, made
    writable by `account` and by nobody else but root."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in WRITABLE:
        (run_dir / name).mkdir(exist_ok=True)
    if account is None:
        return
    _own(run_dir, 0, account.gid, RUN_DIR_MODE)
    for private in run_dir.glob("*.conf"):         # client lists, written before
        _own(private, 0, account.gid, 0o640)
    for name in WRITABLE:
        top = run_dir / name
        _own(top, account.uid, account.gid, 0o700)
        # what an earlier run as another user left there (records, journals)
        for root, dirs, files in os.walk(top):
            for entry in dirs + files:
                os.chown(Path(root) / entry, account.uid, account.gid)


def prepare_log(path: Path, account: Account | None):
    """FreeRADIUS opens its log file itself: make it the account's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(exist_ok=True)
    if account is not None:
        _own(path, account.uid, account.gid, 0o640)


def share_secret_file(path: Path, account: Account | None, secrets_dir: Path):
    """A file root keeps (the PIN key) readable by FreeRADIUS's group too, and
    the service's own secrets folder passable by it (a key kept elsewhere must
    be reachable already: check_readable says so)."""
    if account is None or not path.exists():
        return
    if path.parent == secrets_dir:
        _own(path.parent, 0, account.gid, 0o750)
    _own(path, 0, account.gid, 0o640)


def check_readable(account: Account | None, paths, who: str = "FreeRADIUS",
                   setting: str = "KONDGE_RADIUS_USER"):
    """`who`, run as `account`, can read each path (and reach it), or
    StackError saying which and what to do."""
    if account is None:
        return
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    for path in paths:
        result = subprocess.run([runuser, "-u", account.name, "--", "test", "-r", str(path)],
                                capture_output=True)
        if result.returncode != 0:
            raise StackError(
                f"{who} runs as {account.name}, who cannot read {path}: let it read the "
                f"checkout (chmod -R o+rX on the folder; the PIN key and the secrets stay "
                f"private), or set {setting} to a user who can")


# --- database roles by OS user (pg_ident.conf) ----------------------------------

MAP = "kondge"


def ident_map(s: config.Settings, roles) -> str:
    """pg_ident.conf: who may be which role. Whoever runs the service (root)
    may be any of them; FreeRADIUS's user only kondge_radius; the web
    portal's user only kondge_web; the users in KONDGE_OPERATOR_USERS only
    kondge_operator; 'postgres' itself."""
    starter = pwd.getpwuid(os.geteuid()).pw_name
    lines = ["# Written by kondge_billing/operations/cluster.py at every start: do not edit here.",
             "# MAPNAME  SYSTEM-USERNAME  PG-USERNAME (see docs/operations.md, Roles)"]
    pairs = [(starter, role) for role in ("postgres",) + tuple(roles)]
    pairs.append(("postgres", "postgres"))
    account = radius_account(s)
    if account is not None:
        pairs.append((account.name, "kondge_radius"))
    web = web_account(s)
    if web is not None:
        pairs.append((web.name, "kondge_web"))
    pairs += [(user, "kondge_operator") for user in s.operator_users]
    seen = []
    for pair in pairs:
        if pair not in seen:
            seen.append(pair)
            lines.append(f"{MAP}  {pair[0]}  {pair[1]}")
    return "\n".join(lines) + "\n"


HBA = f"""# Written by kondge_billing/operations/cluster.py at every start: do not edit here.
# Local connections only, each by the OS user behind it (peer) and the map
# in pg_ident.conf: a process is the database roles its OS user may be.
# TYPE  DATABASE  USER  METHOD
local   all       all   peer map={MAP}
"""
