"""The web portal's process, one more part the supervisor runs and restarts.

`python -m kondge_billing.web` (kondge_billing/web/__main__.py) serves the
portal with waitress on KONDGE_WEB_LISTEN:KONDGE_WEB_PORT. Started by root
it runs as KONDGE_WEB_USER ('www-data'), whose database connections may be
kondge_web and no other role (privileges.ident_map). It is handed the PIN
key on its standard input (it hashes the PINs card holders type, as the
call path does), so that its user needs no access to the key's file. Its
pid file is var/web/web.pid, its log var/log/web.log (opened by the
supervisor). KONDGE_WEB_PORT=0: no portal.

The portal runs at a lower CPU priority than the call path (NICE), and so
do its PostgreSQL backends on the private cluster: half of what a page
view costs is spent there, and a backend does not inherit its client's
priority. The supervisor lowers them (lower_backends), as it finds them.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from .. import config
from . import privileges
from .console import say, tail
from ..errors import StackError
from .radius_processes import terminate

#: after a start that failed, wait this long before the next (seconds)
RETRY_AFTER = 5.0
#: the portal's CPU priority below the call path's (a nice value), and its
#: PostgreSQL backends'
NICE = 10
#: how often the supervisor looks for new PostgreSQL backends of the portal (seconds)
LOWER_EVERY = 2.0


def pid_file(s: config.Settings) -> Path:
    return s.web_run_dir / "web.pid"


def log_file(s: config.Settings) -> Path:
    return s.log_dir / "web.log"


def web_pid(s: config.Settings) -> int | None:
    """The pid in the pid file if it is a live portal (not a reused number)."""
    try:
        pid = int(pid_file(s).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"kondge_billing.web" in cmdline else None


def serving(s: config.Settings, timeout: float = 0.5) -> bool:
    """Something accepts connections on the portal's address and port."""
    host = "127.0.0.1" if s.web_listen in ("0.0.0.0", "") else s.web_listen
    try:
        with socket.create_connection((host, s.web_port), timeout=timeout):
            return True
    except OSError:
        return False


def lower_backends(s: config.Settings) -> list[int]:
    """Give the private cluster's backends of the portal's role (kondge_web)
    the portal's CPU priority, NICE; returns the pids lowered now. They are
    found by their process title ("postgres: kondge_web ...") and their
    working directory, the cluster's data directory, so that no other
    cluster's process is touched; one already at NICE or lower is left."""
    if not s.private_cluster:
        return []
    data = str(s.pg_data.resolve())
    lowered = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if not f.read(64).startswith(b"postgres: kondge_web "):
                    continue
            if os.readlink(f"/proc/{pid}/cwd") != data:
                continue
            if os.getpriority(os.PRIO_PROCESS, pid) < NICE:
                os.setpriority(os.PRIO_PROCESS, pid, NICE)
                lowered.append(pid)
        except OSError:          # gone meanwhile, or not ours to change
            continue
    return lowered


class WebPortal:
    """Start, watch and stop the portal's process."""

    def __init__(self, s: config.Settings):
        self.s = s
        self.proc: subprocess.Popen | None = None
        self.adopted: int | None = None
        self._next_try = 0.0
        self._next_lowering = 0.0

    @property
    def enabled(self) -> bool:
        return self.s.web_port != 0

    def pid(self) -> int | None:
        if self.proc is not None and self.proc.poll() is None:
            return self.proc.pid
        if self.adopted is not None and web_pid(self.s) == self.adopted:
            return self.adopted
        return None

    def adopt(self) -> bool:
        """Take over a portal an earlier supervisor left running."""
        pid = web_pid(self.s) if self.enabled else None
        self.adopted = pid
        return pid is not None

    def start(self, timeout: float = 20.0) -> bool:
        """Start the portal and wait until it accepts connections; False (and
        said why) if it did not: the rest of the service serves on, and the
        supervisor tries again."""
        if not self.enabled:
            return True
        s = self.s
        leftover = web_pid(s)
        if leftover is not None:
            terminate(leftover)
        account = privileges.web_account(s)
        privileges.check_readable(account, [s.home / "kondge_billing" / "web" / "__main__.py",
                                            Path(sys.executable)], who="the web portal",
                                  setting="KONDGE_WEB_USER")
        key = s.pin_key_file.read_bytes()
        s.web_run_dir.mkdir(parents=True, exist_ok=True)
        log = log_file(s)
        log.parent.mkdir(parents=True, exist_ok=True)
        offset = log.stat().st_size if log.exists() else 0
        env = dict(os.environ, KONDGE_HOME=str(s.home), KONDGE_VAR=str(s.var))
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kondge_billing.web", "--key-from-stdin"],
                stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, env=env,
                cwd=str(s.home), start_new_session=True,
                **privileges.popen_identity(account))
        self.adopted = None
        try:
            self.proc.stdin.write(key)
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        pid_file(s).write_text(str(self.proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if serving(s):
                say(f"web portal ready on http://{s.web_listen}:{s.web_port}/ "
                    f"(pid {self.proc.pid})")
                return True
            time.sleep(0.1)
        self._next_try = time.monotonic() + RETRY_AFTER
        say(f"the web portal did not start on {s.web_listen}:{s.web_port}; "
            f"its log {log}:\n{tail(log, offset, 2000)}")
        self.stop()
        return False

    def restart_dead(self):
        """Start the portal again if it died (not sooner than RETRY_AFTER
        after a start that failed); and, every LOWER_EVERY seconds, give its
        new PostgreSQL backends its CPU priority (lower_backends)."""
        if self.enabled and time.monotonic() >= self._next_lowering:
            self._next_lowering = time.monotonic() + LOWER_EVERY
            lower_backends(self.s)
        if not self.enabled or self.pid() is not None or time.monotonic() < self._next_try:
            return
        say("the web portal is not running: starting it")
        self.start()

    def stop(self):
        pid = self.pid()
        if pid is not None:
            terminate(pid, self.proc)
        self.proc, self.adopted = None, None
        pid_file(self.s).unlink(missing_ok=True)


def check_users(s: config.Settings):
    """The portal's user must not be FreeRADIUS's: each user is one role."""
    web, radius = privileges.web_account(s), privileges.radius_account(s)
    if web is not None and radius is not None and web.name == radius.name:
        raise StackError(f"KONDGE_WEB_USER and KONDGE_RADIUS_USER are both {web.name}: "
                         f"give the portal a user of its own (default www-data)")
