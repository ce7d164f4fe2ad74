"""cluster.pg_running reads the postmaster's pid file itself, as `pg_ctl
status` does, without starting pg_ctl (the supervisor asks five times a
second): a live postmaster is running; a pid file naming nobody, a process
that is no postmaster, or nothing readable is not."""

import os
import subprocess
import sys

from kondge_billing import config
from kondge_billing.operations import cluster as stack_cluster


def with_pid_file(tmp_path, text):
    s = config.load({"KONDGE_VAR": str(tmp_path / "var")})
    s.pg_data.mkdir(parents=True)
    if text is not None:
        (s.pg_data / "postmaster.pid").write_text(text)
    return s


def test_the_running_test_cluster_is_running_as_pg_ctl_says(cluster):
    assert stack_cluster._pg_ctl(cluster, "status").returncode == 0
    assert stack_cluster.pg_running(cluster) is True


def test_a_pid_file_naming_the_live_postmaster_is_running(cluster, tmp_path):
    postmaster = (cluster.pg_data / "postmaster.pid").read_text()
    assert stack_cluster.pg_running(with_pid_file(tmp_path, postmaster)) is True


def test_a_pid_file_naming_nobody_or_another_program_is_not(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    for i, text in enumerate([None, "", "not a pid\n", "-1234\n/data\n",
                              f"{gone.pid}\n/data\n", f"{os.getpid()}\n/data\n"]):
        s = with_pid_file(tmp_path / str(i), text)
        assert stack_cluster.pg_running(s) is False, text


def test_the_supervisor_starts_no_program_to_ask(cluster, monkeypatch):
    started = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: started.append(a))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(a))
    assert stack_cluster.pg_running(cluster) is True
    assert started == []
