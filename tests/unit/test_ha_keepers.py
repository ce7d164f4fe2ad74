"""The HA topology's keepers (kondge_billing/operations/ha.py): a pg_autoctl
already running for a node's data folder is adopted, never started twice,
and stopped before its folder is touched; a keeper that dies at once is
launched again after a growing pause, not every half second.

A stand-in process plays the pg_autoctl (its command line names it, and
pg_autoctl's own pid file names its pid); pg_autoctl's own stop is
/bin/true here, so that the stand-in must be stopped by the fallback."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kondge_billing import config
from kondge_billing.operations import ha


@pytest.fixture
def t(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setattr(ha, "PG_AUTOCTL", "/bin/true")
    monkeypatch.setattr(ha, "as_postgres", lambda argv: argv)
    topo = ha.Topology(config.load({"KONDGE_VAR": str(tmp_path / "var"),
                                    "KONDGE_HOME": str(tmp_path)}))
    topo.root.mkdir(parents=True)
    return topo


@pytest.fixture
def stand_in():
    """Start a process whose command line says pg_autoctl, in a session of its own."""
    started = []

    def start():
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                                 "pg_autoctl", "run"], start_new_session=True)
        started.append(proc)
        # Popen returns once the exec is past its point of no return, which
        # can be before the kernel shows the new command line in /proc
        deadline = time.monotonic() + 10
        while b"pg_autoctl" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "the stand-in never showed its command line"
            time.sleep(0.01)
        return proc
    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def write_autoctl_pid(t, name, pid):
    path = ha.autoctl_pid_file(t, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n/some/semaphore\n")


def test_pg_autoctl_keeps_its_pid_file_under_the_runtime_folder(t):
    assert ha.autoctl_pid_file(t, "node2") == (
        t.root.parent.parent / "run" / "pg_autoctl" / str(t.data("node2")).lstrip("/")
        / "pg_autoctl.pid")


def test_a_pg_autoctl_running_for_the_folder_is_adopted_and_stopped(t, stand_in, monkeypatch):
    proc = stand_in()
    write_autoctl_pid(t, "node2", proc.pid)
    assert ha.running_pid(ha.pid_file(t, "node2")) is None      # not launched by us
    assert ha.keeper_pid(t, "node2") == proc.pid                 # but found running
    assert ha.pid_file(t, "node2").read_text() == str(proc.pid)  # and adopted
    assert ha.keeper_pids(t)["node2"] == proc.pid

    launched = []
    monkeypatch.setattr(ha, "launch_keeper", lambda _t, name: launched.append(name))
    ha.start_keepers(t, only=("node2",))                          # running: not started twice
    assert launched == [] and ha.running_pid(ha.pid_file(t, "node2")) == proc.pid

    began = time.monotonic()
    ha.stop_keepers(t, timeout=0.5, only=("node2",))              # its own stop did nothing
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert time.monotonic() - began < 15
    assert not ha.pid_file(t, "node2").exists()
    assert ha.keeper_pid(t, "node2") is None


def test_a_pid_file_naming_another_process_is_not_adopted(t):
    write_autoctl_pid(t, "node1", os.getpid())      # a live process, but no pg_autoctl
    assert ha.autoctl_pid(t, "node1") is None
    assert ha.keeper_pid(t, "node1") is None
    assert not ha.pid_file(t, "node1").exists()
    write_autoctl_pid(t, "node1", 2 ** 22 + 1)      # no such process
    assert ha.keeper_pid(t, "node1") is None


def test_the_runner_does_not_start_a_node_whose_keeper_it_finds_running(t, stand_in,
                                                                         monkeypatch):
    proc = stand_in()
    write_autoctl_pid(t, "node2", proc.pid)
    launched = []
    monkeypatch.setattr(ha, "launch_keeper", lambda _t, name: launched.append(name))
    monkeypatch.setattr(ha, "primary_name", lambda _t: "node1")
    runner = ha.Runner(t)
    runner.tick()
    assert "node2" not in launched and "node2" not in runner.dead_since
    # the monitor has no keeper at all: started; node1 neither, but it is
    # the primary by the monitor's word: left until node2 takes over
    assert launched == ["monitor"] and "node1" in runner.dead_since


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_keeper_that_dies_at_once_is_launched_again_after_a_growing_pause(t, monkeypatch,
                                                                          capsys):
    running = {"monitor": 1, "node1": 1, "node2": None}
    launched = []
    clock = Clock()
    monkeypatch.setattr(ha, "keeper_pid", lambda _t, name: running[name])
    monkeypatch.setattr(ha, "primary_name", lambda _t: "node1")
    monkeypatch.setattr(ha, "launch_keeper", lambda _t, name: launched.append(clock.now))
    t.log_dir.mkdir(parents=True)
    (t.log_dir / "node2.log").write_text("FATAL another pg_autoctl runs for this folder\n")
    runner = ha.Runner(t)
    runner.clock = clock
    for _ in range(2 * 130):                         # the runner's half-second ticks
        runner.tick()
        clock.now += 0.5
    assert [at - 1000.0 for at in launched] == [0, 1, 3, 7, 15, 31, 61, 91, 121]
    said = capsys.readouterr()
    assert "stopped 0.5 s after its start" in said.out + said.err
    assert "another pg_autoctl runs for this folder" in said.out + said.err

    # a launch that stays up ends the pauses: the next death is retried at once
    running["node2"] = 7
    runner.tick()
    clock.now += ha.QUICK_DEATH
    runner.tick()
    assert runner.backoff == {} and "node2" not in runner.launched
    running["node2"] = None
    before = len(launched)
    runner.tick()
    assert len(launched) == before + 1
