"""What each process of the running service may do as the OS user it runs
as: FreeRADIUS as its own user, reading its configuration and the PIN key,
writing only its own folders, and connecting to the database as the call
path's role only; other local users not at all."""

import os
import pwd
import subprocess
import pytest

from kondge_billing.operations import privileges, radius_processes

PSQL = "/usr/lib/postgresql/15/bin/psql"


def as_user(user, *argv):
    return subprocess.run(["runuser", "-u", user, "--", *argv], capture_output=True, text=True,
                          timeout=30)


def psql_as(service, user, role, sql="SELECT current_user"):
    s = service.settings
    return as_user(user, PSQL, "-X", "-At", "-h", str(s.pg_socket_dir), "-p", str(s.pg_port),
                   "-d", "kondge", "-U", role, "-c", sql)


def owner_of(pid):
    return pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name


def test_freeradius_runs_as_its_own_user(stack_ready):
    pids = list(radius_processes.radius_pids(stack_ready.settings).values())
    assert len(pids) == stack_ready.settings.workers + (stack_ready.settings.workers > 1)
    assert {owner_of(p) for p in pids} == {"freerad"}


@pytest.mark.parametrize("role, allowed", [
    ("kondge_radius", True), ("kondge", False), ("kondge_operator", False), ("postgres", False)])
def test_freeradius_user_is_the_call_paths_role_and_no_other(stack_ready, role, allowed):
    result = psql_as(stack_ready, "freerad", role)
    if allowed:
        assert result.returncode == 0 and result.stdout.strip() == role, result.stderr
    else:
        assert result.returncode != 0
        assert "Peer authentication failed" in result.stderr, result.stderr


@pytest.mark.parametrize("role", ["kondge_radius", "kondge", "kondge_operator", "postgres"])
def test_another_local_user_is_no_role_at_all(stack_ready, role):
    result = psql_as(stack_ready, "nobody", role)
    assert result.returncode != 0 and "authentication failed" in result.stderr, result.stderr


def test_the_freeradius_user_writes_its_folders_and_nothing_root_keeps(stack_ready):
    run_dir = stack_ready.settings.radius_run_dir
    secret_files = [run_dir / "clients.conf"] + list(run_dir.glob("worker-*/clients.conf"))
    assert len(secret_files) >= 2
    for path in secret_files:
        assert as_user("freerad", "test", "-r", str(path)).returncode == 0
        assert as_user("freerad", "test", "-w", str(path)).returncode != 0
        moved = as_user("freerad", "mv", str(path), str(path) + ".x")
        assert moved.returncode != 0 and path.exists()           # sticky: root's stays
        assert as_user("nobody", "test", "-r", str(path)).returncode != 0
    for name in privileges.WRITABLE:
        probe = run_dir / name / "probe"
        assert as_user("freerad", "touch", str(probe)).returncode == 0
        probe.unlink()
    assert as_user("freerad", "touch", str(stack_ready.settings.home / "probe")).returncode != 0
    key = stack_ready.settings.pin_key_file
    assert as_user("freerad", "test", "-r", str(key)).returncode == 0
    assert as_user("nobody", "test", "-r", str(key)).returncode != 0


def test_operator_users_are_the_operators_role_only(settings, tmp_path):
    from dataclasses import replace
    mapped = privileges.ident_map(replace(settings, operator_users=("alice",)),
                                  ("kondge", "kondge_operator", "kondge_radius"))
    rows = [line.split() for line in mapped.splitlines() if line and not line.startswith("#")]
    assert ["kondge", "alice", "kondge_operator"] in rows
    assert [r for r in rows if r[1] == "alice"] == [["kondge", "alice", "kondge_operator"]]
    assert [r for r in rows if r[1] == "freerad"] == [["kondge", "freerad", "kondge_radius"]]
