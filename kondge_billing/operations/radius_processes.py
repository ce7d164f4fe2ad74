"""The FreeRADIUS processes of the service, run as children of the supervisor.

KONDGE_WORKERS=1: one process (freeradius/radiusd.conf) serves the gateways
and runs the billing hook. KONDGE_WORKERS=N>=2: N workers (radiusd.conf,
each on its own loopback ports) run the hook behind a front end
(freeradius/frontend.conf) that serves the gateways. Each process has a run
directory under var/radius (pid file, control socket, clients, spool) and a
log file; the pid files let `status` and `stop` find a server a dead
supervisor left behind. Their configuration files are rendered by
radius_config.py.
"""

import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import psycopg2

from .. import config
from ..store import gateways
from . import privileges, radius_config
from .console import say, tail
from ..errors import StackError

FREERADIUS = shutil.which("freeradius") or "/usr/sbin/freeradius"
RADMIN = shutil.which("radmin") or "/usr/sbin/radmin"


def venv_site_packages(home: Path) -> Path:
    """The project venv's site-packages, for the Python FreeRADIUS embeds."""
    return home / ".venv" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


def radius_env(s: config.Settings) -> dict:
    """The environment radiusd.conf and frontend.conf read (see their heads)."""
    env = {k: v for k, v in os.environ.items()}
    site = venv_site_packages(s.home)
    env.update({
        "KONDGE_HOME": str(s.home), "KONDGE_VAR": str(s.var),
        "KONDGE_RUN_DIR": str(s.radius_run_dir), "KONDGE_LOG_DIR": str(s.log_dir),
        "KONDGE_LOG_NAME": "radius.log", "KONDGE_BEHIND_FRONTEND": "no",
        "KONDGE_LISTEN": s.listen, "KONDGE_AUTH_PORT": str(s.auth_port),
        "KONDGE_ACCT_PORT": str(s.acct_port), "KONDGE_DSN": s.dsn,
        "KONDGE_RADIUS_DSN": s.radius_dsn, "KONDGE_QUEUE_SIZE": str(s.queue_size),
        "KONDGE_RECV_BUFFER": str(s.recv_buffer),
        "KONDGE_PIN_KEY": str(s.pin_key_file), "KONDGE_SHED_AFTER_MS": str(Decimal(s.shed_after_us) / 1000),
        "KONDGE_AUTH_WHEN_DB_DOWN": s.auth_when_db_down,
        "KONDGE_UNAUTHORISED_CALLS": s.unauthorised_calls,
        "KONDGE_UNKNOWN_CARD_CODE": str(s.unknown_card_code),
        "KONDGE_PYTHONPATH": f"{s.home / 'mods-config' / 'python'}:{s.home}:{site}",
    })
    return env


# --- what the processes read about the gateways ---------------------------------

def directory_file(s: config.Settings) -> Path:
    """The gateway directory every hook of this server reads (gateways.FileDirectory)."""
    return s.gateway_directory


def render_clients(s: config.Settings, gateway_list, revision: int = 0,
                   removed=()) -> radius_config.Rendered:
    """The gateways for FreeRADIUS: the workers' directory first, then the
    front end's client list (with the secrets, readable by its owner only).
    A gateway that cannot be served is left out of both, and named with why
    in the directory (`kondge server status` reads it); the others are served."""
    s.radius_run_dir.mkdir(parents=True, exist_ok=True)
    gateway_list = list(gateway_list)
    rendered = radius_config.render_gateways(gateway_list)
    left_out = {item.id for item in rendered.skipped}
    gateways.write_directory(directory_file(s), revision,
                             [gw for gw in gateway_list if gw.id not in left_out],
                             [gw for gw in removed if not gateways.problems(gw)],
                             rendered.skipped)
    radius_config.write_private(s.radius_run_dir / "clients.conf", rendered.text)
    return rendered


def worker_dirs(s: config.Settings) -> list[Path]:
    """The run directories of the worker processes there are (or were)."""
    return sorted(s.radius_run_dir.glob("worker-*"))


def spool_dirs(s: config.Settings) -> list[Path]:
    """Where accounting waits while the database is down: one spool per
    process that runs the hook (the single server, or each worker)."""
    return [s.radius_run_dir / "spool"] + [d / "spool" for d in worker_dirs(s)]


def quarantine_dirs(s: config.Settings) -> list[Path]:
    """Where FreeRADIUS keeps records it could not hand to the hook (spool.py)."""
    return [d.parent / "quarantine" for d in spool_dirs(s)]


def fsync_spool(s: config.Settings):
    """FreeRADIUS's detail writer does not fsync: make quarantined records durable
    (the hook fsyncs its own spool before it answers)."""
    for directory in quarantine_dirs(s):
        try:
            names = list(directory.iterdir())
        except FileNotFoundError:
            continue
        for path in names:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue                # read back and removed meanwhile
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def radmin(s: config.Settings, command: str) -> str:
    """A command to the process the gateways talk to, through its control socket."""
    result = subprocess.run([RADMIN, "-f", str(s.radius_run_dir / "control.sock"), "-e", command],
                            capture_output=True, text=True, timeout=10)
    if result.returncode != 0 or "ERROR" in result.stdout + result.stderr:
        raise StackError(f"radmin {command!r}: {(result.stdout + result.stderr).strip()}")
    return result.stdout


class Radius:
    """One FreeRADIUS process, run in the foreground as our child.

    `name` is "freeradius" for the process the gateways talk to (the single
    server, or the front end with conf="frontend") and "worker-N" for a
    worker; each has its own run directory (pid, control socket, clients,
    spool) and log file."""

    def __init__(self, s: config.Settings, name: str = "freeradius", conf: str = "radiusd",
                 env: dict | None = None):
        self.s = s
        self.name = name
        self.conf = conf
        self.env = dict(env or {})
        self.run_dir = s.radius_run_dir if name == "freeradius" else s.radius_run_dir / name
        self.log_name = "radius.log" if name == "freeradius" else f"radius-{name}.log"
        self.proc: subprocess.Popen | None = None
        self.adopted: int | None = None      # a running process an earlier supervisor started
        self._offset = 0

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "radiusd.pid"

    @property
    def log(self) -> Path:
        return self.s.log_dir / self.log_name

    def running_pid(self) -> int | None:
        """The pid in our pid file if it is a live FreeRADIUS (not a reused number)."""
        return radius_pid(self.pid_file)

    def adopt(self) -> bool:
        """Take over this process if an earlier supervisor left it running."""
        pid = self.running_pid()
        if pid is None:
            return False
        self.proc, self.adopted = None, pid
        return True

    def _kill_leftover(self):
        pid = self.running_pid()
        if pid is None:
            return
        say(f"stopping a FreeRADIUS left over from an earlier run (pid {pid})")
        terminate(pid)
        self.pid_file.unlink(missing_ok=True)

    def launch(self):
        """Start the process; `wait_ready` waits until it serves."""
        s = self.s
        self.adopted = None
        self._kill_leftover()
        account = privileges.radius_account(s)
        prepare_for(s, account)
        privileges.prepare_run_dir(self.run_dir, account)
        privileges.prepare_log(self.log, account)
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        env = radius_env(s)
        env.update({"KONDGE_RUN_DIR": str(self.run_dir), "KONDGE_LOG_NAME": self.log_name})
        env.update(self.env)
        argv = [FREERADIUS, "-f", "-d", str(s.home / "freeradius")]
        if self.conf != "radiusd":
            argv += ["-n", self.conf]
        out = self.log.with_suffix(".out")
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=open(out, "ab"), stderr=subprocess.STDOUT,
                                     **privileges.popen_identity(account))
        # In the foreground FreeRADIUS writes no pid file: we keep it, for
        # `status` and for stopping a server a dead supervisor left behind.
        self.pid_file.write_text(str(self.proc.pid))

    def wait_ready(self, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StackError(f"FreeRADIUS ({self.name}) exited at start (code "
                                 f"{self.proc.returncode}); see {self.log}:\n"
                                 f"{tail(self.log, self._offset)}")
            if "Ready to process requests" in tail(self.log, self._offset, 100000):
                return
            time.sleep(0.05)
        self.stop()
        raise StackError(f"FreeRADIUS ({self.name}) not ready after {timeout:.0f} s; "
                         f"see {self.log}")

    def start(self, timeout: float = 30.0):
        self.launch()
        self.wait_ready(timeout)

    def alive(self) -> bool:
        if self.adopted is not None:
            return radius_pid(self.pid_file) == self.adopted
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.adopted if self.adopted is not None else (self.proc and self.proc.pid)

    def stop(self):
        if self.adopted is not None:
            terminate(self.adopted)
        elif self.proc is not None and self.proc.poll() is None:
            terminate(self.proc.pid, self.proc)
        self.proc = self.adopted = None
        self.pid_file.unlink(missing_ok=True)


def prepare_for(s: config.Settings, account):
    """What every FreeRADIUS process of the service needs before it starts as
    `account`: to reach and read the checkout, the venv and the PIN key."""
    if account is None:
        return
    privileges.make_traversable(s.home, account.name)
    privileges.make_traversable(s.radius_run_dir, account.name)
    privileges.share_secret_file(s.pin_key_file, account, s.home / "var" / "secrets")
    privileges.check_readable(account, [
        s.home / "freeradius" / "radiusd.conf", s.home / "mods-config" / "python" / "kondge_hook.py",
        Path(__file__).parents[1] / "calls" / "service.py", Path(psycopg2.__file__), s.pin_key_file])


def radius_pid(pid_file: Path) -> int | None:
    """The pid in `pid_file` if it is a live FreeRADIUS (not a reused number)."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"freeradius" in cmdline else None


EPHEMERAL = "/proc/sys/net/ipv4/ip_local_port_range"


def ephemeral_ports(path: str = EPHEMERAL) -> tuple[int, int]:
    """The ports the kernel hands out to client sockets and outgoing
    connections (net.ipv4.ip_local_port_range)."""
    values = radius_config.sysctl_ints(path)
    return values if values and len(values) == 2 else (32768, 60999)


def _free(host: str, port: int) -> bool:
    """Nothing holds `port` on `host`, UDP or TCP."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def free_ports(count: int = 2, host: str = "127.0.0.1") -> int:
    """A port p with the `count` - 1 ports after it free too, over UDP and TCP
    both (a worker's three: radius_config.worker_ports; its calls and
    accounting ports listen over TCP, and accounting over UDP too).

    Taken outside the kernel's ephemeral range: between this look and the
    worker's bind (a second or so, while its hook starts), a client socket
    or an outgoing connection there could take one, and the worker would
    fail to start ("Address already in use")."""
    low, high = ephemeral_ports()
    spans = [(a, b - count + 1) for a, b in ((1024, low - 1), (high + 1, 65535))
             if b - count + 1 >= a]
    if not spans:
        raise StackError("no loopback ports outside the ephemeral range "
                         "(net.ipv4.ip_local_port_range) for a worker")
    pick = random.SystemRandom()
    for _ in range(500):
        a, b = pick.choice(spans)
        port = pick.randint(a, b)
        if all(_free(host, port + extra) for extra in range(count)):
            return port
    raise StackError(f"no {count} consecutive free loopback ports outside the ephemeral "
                     f"range {low}-{high} for a worker")


class RadiusSet:
    """The FreeRADIUS processes of the service.

    KONDGE_WORKERS=1: one process serves the gateways and runs the hook.
    KONDGE_WORKERS=N>=2: N workers run the hook, each on its own loopback
    ports, behind a front end that serves the gateways and proxies to the
    least busy live worker. The workers share a secret with the front end,
    made afresh at each start and kept in files only root can read."""

    #: a worker's TCP port (its calls, its accounting) that the front end has
    #: held dead for this long while the same worker's UDP port is alive is
    #: declared alive again (revive_tcp): FreeRADIUS 3.2 revives a dead UDP
    #: home server by Status-Server, but one over TCP whose connection is gone
    #: can stay dead for good
    REVIVE_TCP_AFTER = 30.0
    #: how often the supervisor asks the front end for its view (radmin)
    REVIVE_CHECK_EVERY = 5.0

    def __init__(self, s: config.Settings):
        self.s = s
        self.workers: list[Radius] = []
        self._dead_since: dict[int, float] = {}
        self._next_revive_check = 0.0
        if s.workers == 1:
            self.front = Radius(s)
        else:
            self.front = Radius(s, conf="frontend")

    def all(self) -> list[Radius]:
        return self.workers + [self.front]

    def _worker(self, i: int, port: int) -> Radius:
        """Worker i on its three ports from `port` (radius_config.worker_ports):
        new logins, the stage 2 of the calls admitted, accounting."""
        ports = radius_config.worker_ports(port)
        worker = Radius(self.s, f"worker-{i}", env={
            "KONDGE_LISTEN": "127.0.0.1", "KONDGE_AUTH_PORT": str(ports["logins"]),
            "KONDGE_ACCT_PORT": str(ports["acct"]), "KONDGE_BEHIND_FRONTEND": "yes"})
        worker.port = port
        return worker

    def _prepare_workers(self):
        s = self.s
        secret = secrets.token_urlsafe(24)
        for name, pid in radius_pids(s).items():
            if name != "freeradius":
                say(f"stopping a FreeRADIUS worker left over from an earlier run (pid {pid})")
                terminate(pid)
        self.workers = []
        for i in range(1, s.workers + 1):
            worker = self._worker(i, free_ports(3))
            radius_config.write_private(worker.run_dir / "clients.conf",
                                        radius_config.frontend_client(secret))
            (worker.run_dir / "listen-calls.conf").write_text(
                radius_config.worker_listeners(worker.port))
            (worker.run_dir / "port").write_text(f"{worker.port}\n")
            self.workers.append(worker)
        radius_config.write_private(s.radius_run_dir / "workers.conf", radius_config.workers_conf(
            [(f"kondge-{w.name}", w.port) for w in self.workers], secret,
            logins_in_flight=s.logins_in_flight))

    def adopt(self) -> bool:
        """Take over what an earlier supervisor left running (it died, or was
        killed), and start only what is missing: no blackout of the parts that
        serve. False (nothing adopted) when nothing of ours runs, or what runs
        does not match the settings (another number of workers)."""
        s = self.s
        running = radius_pids(s)
        if not self.front.adopt() and not running:
            return False
        if s.workers == 1 and any(n.startswith("worker-") for n in running):
            self.front.adopted = None
            return False
        workers = []
        if s.workers > 1:
            for i in range(1, s.workers + 1):
                port_file = s.radius_run_dir / f"worker-{i}" / "port"
                try:
                    port = int(port_file.read_text())
                except (OSError, ValueError):
                    break
                workers.append(self._worker(i, port))
            extra = [n for n in radius_pids(s)
                     if n.startswith("worker-") and int(n[7:]) > s.workers]
            if len(workers) != s.workers or extra or not (
                    s.radius_run_dir / "workers.conf").exists():
                self.front.adopted = None
                return False
        self.workers = workers
        for proc in self.all():
            if proc.adopt():
                say(f"FreeRADIUS ({proc.name}) was running (pid {proc.adopted}): serving on")
        for worker in self.workers:
            if not worker.alive():
                say(f"FreeRADIUS ({worker.name}) is not running: starting it on its ports")
                worker.start()
        if not self.front.alive():
            say("FreeRADIUS (front end) is not running: starting it")
            self.front.start()
        else:
            for worker in self.workers:
                if worker.adopted is None:
                    self._declare_alive(worker)
        return True

    def start(self):
        note = radius_config.receive_buffer_note(self.s.recv_buffer,
                                                 radius_config.kernel_rmem_max())
        if note:
            say(note)
        if self.s.workers > 1:
            self._prepare_workers()
            for worker in self.workers:
                worker.launch()
            try:
                for worker in self.workers:
                    worker.wait_ready()
            except StackError:
                self.stop()
                raise
        self.front.start()

    def restart_dead(self):
        """Start again whichever process died (a worker keeps its ports)."""
        for proc in self.all():
            if not proc.alive():
                say(f"FreeRADIUS ({proc.name}) is not running: starting it")
                proc.start()
                if proc is not self.front and self.front.alive():
                    self._declare_alive(proc)

    def revive_tcp(self, clock=time.monotonic) -> list[int]:
        """Declare alive again the TCP ports of a live worker that the front
        end has held dead for REVIVE_TCP_AFTER seconds while the worker's
        UDP port, which the front end checks by Status-Server, is alive: the
        worker answers, and FreeRADIUS would never use those ports again
        (its stage 2s and accounting would all go to the other workers, and
        with every worker so, nowhere). Returns the ports declared alive."""
        now = clock()
        if not self.workers or now < self._next_revive_check or not self.front.alive():
            return []
        self._next_revive_check = now + self.REVIVE_CHECK_EVERY
        try:
            view = front_end_view(self.s)
        except (StackError, OSError, subprocess.SubprocessError):
            return []
        revived = []
        for worker in self.workers:
            ports = radius_config.worker_ports(worker.port)
            serving = view.get(ports["logins"]) == "alive" and worker.alive()
            for kind, proto in radius_config.WORKER_PROTOS.items():
                port = ports[kind]
                if proto != "tcp" or not serving or view.get(port) != "dead":
                    self._dead_since.pop(port, None)
                    continue
                since = self._dead_since.setdefault(port, now)
                if now - since < self.REVIVE_TCP_AFTER:
                    continue
                try:
                    radmin(self.s, f"set home_server state 127.0.0.1 {port} tcp alive")
                except (StackError, OSError, subprocess.SubprocessError) as exc:
                    say(f"could not declare {worker.name}'s {kind} port alive ({exc})")
                    continue
                say(f"the front end held {worker.name}'s {kind} port {port} (TCP) dead for "
                    f"{now - since:.0f} s while the worker answers: declared alive again")
                self._dead_since.pop(port, None)
                revived.append(port)
        return revived

    def _declare_alive(self, worker):
        """Tell the front end a restarted worker serves again, rather than
        let it wait for Status-Server answers."""
        for kind, port in radius_config.worker_ports(worker.port).items():
            proto = radius_config.WORKER_PROTOS[kind]
            try:
                radmin(self.s, f"set home_server state 127.0.0.1 {port} {proto} alive")
            except (StackError, OSError, subprocess.SubprocessError) as exc:
                say(f"could not declare {worker.name} alive to the front end ({exc}); "
                    f"it will be used again once it answers a Status-Server")
                return

    def restart_front(self):
        self.front.stop()
        self.front.start()

    def stop(self):
        for proc in [self.front] + self.workers:
            proc.stop()


def front_end_view(s: config.Settings) -> dict:
    """{port: state} of the front end's workers (home servers), from radmin."""
    states = {}
    for line in radmin(s, "show home_server list").splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[1].isdigit():
            states[int(fields[1])] = fields[4]
    return states


def radius_pids(s: config.Settings) -> dict:
    """{name: pid} of the FreeRADIUS processes running under s.var (by pid file)."""
    found = {"freeradius": radius_pid(s.radius_run_dir / "radiusd.pid")}
    for directory in worker_dirs(s):
        found[directory.name] = radius_pid(directory / "radiusd.pid")
    return {name: pid for name, pid in found.items() if pid is not None}


def terminate(pid: int, proc: subprocess.Popen | None = None, grace: float = 5.0):
    """SIGTERM, then SIGKILL: 3.2.1 sometimes hangs on SIGTERM."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return
        else:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if proc is not None:
        proc.wait(timeout=10)
