"""Where a target's CPU goes, by component, from the kernel's own sampling:
`perf record -a` over the middle of a load step, every process of the
machine sampled at the same rate, idle included, then each sample put down
to a component by its process name and the code it was in.

bench/floor.py runs this for each kind at one offered rate (--perf-rate),
so that the service's excess over the floor can be read part by part:
FreeRADIUS's own code, the Python inside its workers (the interpreter,
psycopg2, libpq), the kernel working for FreeRADIUS (sockets, wake-ups,
the front end's hops), PostgreSQL's own code and the kernel working for
it (its sockets, WAL writes and flushes). CPU-milliseconds a complete
call = a component's share of all samples x CPUs x 1,000 / calls a second.

Needs `perf` (Debian's linux-perf) and root or kernel.perf_event_paranoid
<= 0; without them the split is left out with the reason, and the
benchmark runs as before.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

# component, in the order the report lists them
COMPONENTS = ("freeradius", "python", "freeradius kernel", "postgres", "postgres kernel",
              "load generator", "other", "idle")
# the shared objects of the hook inside a FreeRADIUS process: the interpreter,
# its extension modules (psycopg2, _decimal, _hashlib ...), libpq, rlm_python3
PYTHON_DSO = re.compile(r"libpython|cpython-|\.cpython|libpq\.so|rlm_python|_psycopg")
KERNEL_DSO = "[kernel.kallsyms]"
# a line of `perf report --sort comm,dso --stdio -g none`: "  12.34%  comm  dso"
LINE = re.compile(r"^\s*([0-9.]+)%\s+(\S+)\s+(\S.*?)\s*$")


def component(comm: str, dso: str) -> str:
    """The component a sample belongs to, by its process name and code."""
    kernel = dso.strip() == KERNEL_DSO
    if comm == "swapper":
        return "idle"
    if comm == "freeradius":
        if kernel:
            return "freeradius kernel"
        return "python" if PYTHON_DSO.search(dso) else "freeradius"
    if comm == "postgres":
        return "postgres kernel" if kernel else "postgres"
    if comm.startswith("python"):
        return "load generator"
    return "other"


def classify(report: str) -> dict:
    """{component: percent of all samples} from perf report's comm,dso lines."""
    shares = dict.fromkeys(COMPONENTS, 0.0)
    for line in report.splitlines():
        if line.startswith("#"):
            continue
        m = LINE.match(line)
        if m:
            shares[component(m.group(2), m.group(3))] += float(m.group(1))
    return {k: round(v, 2) for k, v in shares.items()}


def per_call(shares: dict, cpus: int, calls_per_second: float) -> dict:
    """CPU-milliseconds a complete call for each component (idle left out)."""
    if not calls_per_second:
        return {}
    return {k: round(v / 100 * cpus * 1000 / calls_per_second, 3)
            for k, v in shares.items() if k != "idle"}


def unavailable() -> str | None:
    """Why perf cannot sample the machine here, or None."""
    if shutil.which("perf") is None:
        return "perf is not installed (apt-get install linux-perf)"
    try:
        paranoid = int(Path("/proc/sys/kernel/perf_event_paranoid").read_text())
    except (OSError, ValueError):
        paranoid = 2
    if os.geteuid() != 0 and paranoid > 0:
        return f"kernel.perf_event_paranoid is {paranoid}: run as root or set it to 0"
    return None


class Recording:
    """`perf record -a` for `seconds`, after `delay` seconds, into `path`;
    start it, run the step, then `.shares()`."""

    def __init__(self, path: Path, seconds: float, delay: float):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.log = self.path.with_suffix(".log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["perf", "record", "-a", "-q", "-o", str(self.path),
                 "-D", str(int(delay * 1000)), "--", "sleep", str(delay + seconds)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def shares(self, timeout: float = 120.0) -> dict:
        """The components' shares; raises RuntimeError with perf's words if it failed."""
        if self.proc.wait(timeout=timeout) != 0:
            raise RuntimeError(f"perf record failed: {self.log.read_text(errors='replace')[-500:]}")
        report = subprocess.run(
            ["perf", "report", "-i", str(self.path), "--no-children", "--sort", "comm,dso",
             "--stdio", "-g", "none"], capture_output=True, text=True, timeout=timeout)
        if report.returncode != 0:
            raise RuntimeError(f"perf report failed: {report.stderr[-500:]}")
        self.path.unlink(missing_ok=True)       # samples of the whole machine: large
        return classify(report.stdout)


def table(split: dict, order) -> list:
    """Lines: CPU-ms a call by component for each kind, in `order` (bench/floor.py's
    KINDS), and the service's excess over the floor."""
    kinds = [k for k in order if k in split]
    if not kinds:
        return []
    lines = ["", f"CPU a complete call by component (perf, ms; {split[kinds[0]]['rate']:g} calls/s "
             "offered, the middle of the step):",
             "  " + f"{'component':<18}" + "".join(f"{k:>10}" for k in kinds)
             + ("  service-floor" if {"floor", "service"} <= set(kinds) else "")]
    for comp in COMPONENTS[:-1] + ("total",):
        row = [split[k]["ms_a_call"].get(comp, 0.0) if comp != "total"
               else sum(split[k]["ms_a_call"].values()) for k in kinds]
        text = "  " + f"{comp:<18}" + "".join(f"{v:>10.3f}" for v in row)
        if {"floor", "service"} <= set(kinds):
            text += f"{row[kinds.index('service')] - row[kinds.index('floor')]:>15.3f}"
        lines.append(text)
    return lines
