"""The supervisor gives the portal's PostgreSQL backends the portal's CPU
priority (web_process.lower_backends): those of the private cluster and
the portal's role only."""

import os
import subprocess
import time

import pytest

from kondge_billing import config
from kondge_billing.operations import web_process


def stand_in(title: str, cwd) -> subprocess.Popen:
    """A process whose title is `title`, as a PostgreSQL backend sets its own."""
    return subprocess.Popen(["bash", "-c", f'exec -a "{title}" sleep 60'], cwd=cwd)


def titled(proc, title, deadline=10.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
            if f.read().startswith(title.encode()):
                return
        time.sleep(0.02)
    raise AssertionError(f"{proc.pid} never took the title {title!r}")


@pytest.fixture
def settings(tmp_path):
    s = config.load({"KONDGE_VAR": str(tmp_path), "KONDGE_HOME": os.getcwd()})
    s.pg_data.mkdir(parents=True)
    return s


def test_only_the_private_cluster_s_portal_backends_are_lowered(settings, tmp_path):
    elsewhere = tmp_path / "another-cluster"
    elsewhere.mkdir()
    procs = {
        "portal": stand_in("postgres: kondge_web kondge [local] idle", settings.pg_data),
        "radius": stand_in("postgres: kondge_radius kondge [local] idle", settings.pg_data),
        "other cluster": stand_in("postgres: kondge_web kondge [local] idle", elsewhere),
    }
    try:
        for proc in procs.values():
            titled(proc, "postgres: ")
        ours = os.getpriority(os.PRIO_PROCESS, 0)            # the stand-ins inherit it
        lowered = web_process.lower_backends(settings)
        nice = {name: os.getpriority(os.PRIO_PROCESS, p.pid) for name, p in procs.items()}
        assert (procs["portal"].pid in lowered) == (ours < web_process.NICE)
        assert nice["portal"] == max(web_process.NICE, ours)
        assert nice["radius"] == ours and nice["other cluster"] == ours
        # once lowered, it is left alone
        assert procs["portal"].pid not in web_process.lower_backends(settings)
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()


def test_nothing_is_lowered_on_a_cluster_the_service_does_not_run(settings):
    proc = stand_in("postgres: kondge_web kondge [local] idle", settings.pg_data)
    try:
        titled(proc, "postgres: ")
        outside = config.load({"KONDGE_VAR": str(settings.var), "KONDGE_HOME": os.getcwd(),
                               "KONDGE_DATABASE": "external"})
        assert not outside.private_cluster
        assert web_process.lower_backends(outside) == []
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == os.getpriority(os.PRIO_PROCESS, 0)
    finally:
        proc.kill()
        proc.wait()
