"""RadiusSet.revive_tcp (kondge_billing/operations/radius_processes.py): which
of the workers' TCP ports the supervisor declares alive again to the front
end, and which it must leave alone. The front end's view and radmin are
stand-ins here (tests/e2e/test_frontend.py does it against the real front
end)."""

import types

import pytest

from kondge_billing import config
from kondge_billing.operations import radius_config, radius_processes as rp


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def world(tmp_path, monkeypatch):
    s = config.load({"KONDGE_VAR": str(tmp_path), "KONDGE_WORKERS": "2"})
    radius = rp.RadiusSet(s)
    live = {"front": True, 1: True, 2: True}
    radius.front = types.SimpleNamespace(alive=lambda: live["front"])
    radius.workers = [types.SimpleNamespace(name=f"worker-{i}", port=port,
                                            alive=lambda i=i: live[i])
                      for i, port in ((1, 40000), (2, 40010))]
    view = {p: "alive" for w in radius.workers
            for p in radius_config.worker_ports(w.port).values()}
    told = []
    monkeypatch.setattr(rp, "front_end_view", lambda _s: dict(view))
    monkeypatch.setattr(rp, "radmin", lambda _s, command: told.append(command) or "")
    monkeypatch.setattr(rp, "say", lambda *_a: None)
    return types.SimpleNamespace(radius=radius, view=view, told=told, live=live, clock=Clock())


def run_for(w, seconds):
    """The supervisor's loop for `seconds`: revive_tcp every 0.2 s."""
    revived = []
    end = w.clock.now + seconds
    while w.clock.now < end:
        revived += w.radius.revive_tcp(w.clock)
        w.clock.now += 0.2
    return revived


def test_a_tcp_port_dead_while_its_worker_answers_is_declared_alive_after_the_wait(world):
    w = world
    w.view[40002] = "dead"                       # worker-1's accounting port
    assert run_for(w, rp.RadiusSet.REVIVE_TCP_AFTER - 1) == []          # not yet
    assert run_for(w, 2 * rp.RadiusSet.REVIVE_CHECK_EVERY) == [40002]
    assert w.told == ["set home_server state 127.0.0.1 40002 tcp alive"]


def test_what_is_left_alone(world):
    w = world
    w.view[40001] = "zombie"                     # not dead (yet): FreeRADIUS's to decide
    w.view[40011] = w.view[40010] = "dead"       # worker-2's UDP port dead too: it may not answer
    w.view[40000] = "dead"                       # a UDP port: FreeRADIUS revives it itself
    assert run_for(w, 3 * rp.RadiusSet.REVIVE_TCP_AFTER) == []
    w.view[40010] = "alive"
    w.live[2] = False                            # the worker's process is gone: restart_dead's
    assert run_for(w, 3 * rp.RadiusSet.REVIVE_TCP_AFTER) == []
    assert w.told == []


def test_a_port_that_came_back_meanwhile_starts_its_wait_afresh(world):
    w = world
    w.view[40012] = "dead"
    run_for(w, rp.RadiusSet.REVIVE_TCP_AFTER - 5)
    w.view[40012] = "alive"                      # FreeRADIUS took it back itself
    run_for(w, 10)
    w.view[40012] = "dead"
    assert run_for(w, rp.RadiusSet.REVIVE_TCP_AFTER - 5) == []
    assert w.told == []


def test_the_front_end_is_asked_at_most_every_few_seconds_and_not_when_it_is_down(world,
                                                                                   monkeypatch):
    w = world
    asked = []
    monkeypatch.setattr(rp, "front_end_view", lambda _s: asked.append(1) or dict(w.view))
    run_for(w, 20)
    assert len(asked) <= 20 / rp.RadiusSet.REVIVE_CHECK_EVERY + 1
    w.live["front"] = False
    before = len(asked)
    run_for(w, 20)
    assert len(asked) == before
