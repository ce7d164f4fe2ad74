"""Finding PostgreSQL's server programs (kondge_billing/operations/cluster.py), in a
fake tree laid out as Debian lays out /usr/lib/postgresql."""

import pytest

from kondge_billing.operations import cluster
from kondge_billing import config
from kondge_billing.errors import StackError


def programs(directory, names=cluster.PG_PROGRAMS, executable=True):
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = directory / name
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755 if executable else 0o644)
    return directory


@pytest.fixture
def root(tmp_path):
    """/usr/lib/postgresql with 9.6 and 15 complete, 16 without initdb,
    and a folder that is no version."""
    root = tmp_path / "postgresql"
    programs(root / "9.6" / "bin")
    programs(root / "15" / "bin")
    programs(root / "16" / "bin", names=("pg_ctl",))
    programs(root / "common" / "bin")
    return root


def find(root, override=None, cluster_version=None, pg_config=None):
    return cluster.find_pg_bin(override, cluster_version, pg_config=lambda: pg_config,
                               versions_root=root)


def test_the_newest_version_that_has_both_programs(root):
    assert find(root) == root / "15" / "bin"


def test_numbers_are_compared_as_numbers(tmp_path):
    root = tmp_path / "postgresql"
    for version in ("9.6", "10", "9.10"):
        programs(root / version / "bin")
    assert find(root) == root / "10" / "bin"


def test_pg_config_s_folder_comes_first_when_it_has_them(root, tmp_path):
    elsewhere = programs(tmp_path / "opt" / "pgsql" / "bin")
    assert find(root, pg_config=elsewhere) == elsewhere


def test_pg_config_naming_a_client_only_folder_is_passed_over(root, tmp_path):
    client_only = programs(tmp_path / "client" / "bin", names=("psql",))
    assert find(root, pg_config=client_only) == root / "15" / "bin"
    assert find(root, pg_config=root / "16" / "bin") == root / "15" / "bin"


def test_an_existing_cluster_keeps_the_version_that_made_it(root, tmp_path):
    assert find(root, cluster_version="9.6",
                pg_config=programs(tmp_path / "opt" / "bin")) == root / "9.6" / "bin"
    # that version is gone: the usual order (pg_ctl then says what is wrong)
    assert find(root, cluster_version="14") == root / "15" / "bin"


def test_programs_that_are_not_executable_do_not_count(tmp_path):
    root = tmp_path / "postgresql"
    programs(root / "15" / "bin", executable=False)
    with pytest.raises(StackError):
        find(root)


def test_the_setting_wins_and_is_checked(root, tmp_path):
    mine = programs(tmp_path / "mine")
    assert find(root, override=mine, pg_config=root / "15" / "bin") == mine
    with pytest.raises(StackError, match="KONDGE_PG_BIN=.*initdb and pg_ctl"):
        find(root, override=tmp_path / "nothing-here")


def test_none_found_says_what_to_install(tmp_path):
    with pytest.raises(StackError) as refused:
        find(tmp_path / "no-postgresql")
    message = str(refused.value)
    assert "apt-get install postgresql" in message and "KONDGE_PG_BIN" in message


def test_kondge_pg_bin_is_a_setting(tmp_path):
    assert config.load({"KONDGE_HOME": str(tmp_path)}).pg_bin is None
    s = config.load({"KONDGE_HOME": str(tmp_path), "KONDGE_PG_BIN": str(tmp_path / "bin")})
    assert s.pg_bin == tmp_path / "bin"


def test_the_settings_folder_is_used_for_the_cluster(tmp_path):
    mine = programs(tmp_path / "mine")
    s = config.load({"KONDGE_HOME": str(tmp_path), "KONDGE_PG_BIN": str(mine)})
    assert cluster.pg_bin(s) == mine
