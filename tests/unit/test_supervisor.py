"""The supervisor runs the sweep it is handed (kondge_billing/operations/supervisor.py):
not while the database is held down, later when the database cannot be
reached, and it prints what the sweep says it did."""

import pytest

from kondge_billing.operations import cluster
from kondge_billing import config
from kondge_billing.store.db import Database
from kondge_billing.errors import Unavailable
from kondge_billing.operations.supervisor import Supervisor


@pytest.fixture
def settings(tmp_path):
    return config.load({"KONDGE_HOME": str(tmp_path), "KONDGE_VAR": str(tmp_path / "var")})


def supervisor(s, sweep):
    return Supervisor(s, Database("host=/nonexistent dbname=none"), sweep)


def test_the_sweep_runs_and_what_it_did_is_printed(settings, capsys):
    said = iter(["2 unstarted hold(s) lapsed, 0 call(s) without Stop closed", ""])
    sup = supervisor(settings, lambda: next(said))
    sup.sweep()
    sup.sweep()
    assert capsys.readouterr().out == (
        "kondge: sweep: 2 unstarted hold(s) lapsed, 0 call(s) without Stop closed\n")


def test_no_sweep_while_the_database_is_held_down(settings, capsys):
    calls = []
    sup = supervisor(settings, lambda: calls.append(1) or "")
    cluster.db_hold_flag(settings).parent.mkdir(parents=True)
    cluster.db_hold_flag(settings).touch()
    sup.sweep()
    assert calls == [] and capsys.readouterr().out == ""


def test_a_database_that_cannot_be_reached_postpones_the_sweep(settings, capsys):
    def sweep():
        raise Unavailable("database unreachable")
    supervisor(settings, sweep).sweep()
    assert capsys.readouterr().out == "kondge: sweep postponed: database unreachable\n"
