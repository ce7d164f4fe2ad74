"""The spool's replay: in the order written, each record stored once, within
a time budget that leaves the rest for the next turn."""

import time

from kondge_billing.edge import spool


def _spooled(tmp_path, n):
    directory = tmp_path / "spool"
    for i in range(n):
        spool.append(directory, (("Acct-Session-Id", f"call-{i}"),), 1_700_000_000 + i)
    return directory


def _ids(stored):
    return [dict(pairs)["Acct-Session-Id"] for pairs in stored]


def test_a_spent_budget_keeps_the_rest_for_next_time_in_order(tmp_path):
    directory = _spooled(tmp_path, 10)
    stored = []

    def slow(pairs):
        time.sleep(0.05)
        stored.append(pairs)
        return "ok"

    first = spool.replay([directory], slow, print, budget=0.12)
    assert first.paused and 1 <= first.stored < 10
    assert first.stored + first.waiting == 10
    assert spool.count([directory])["spooled"] == first.waiting     # the rest, kept on disk
    assert not list(directory.glob("*.rest"))
    turns = 1
    while spool.count([directory])["spooled"]:
        spool.replay([directory], slow, print, budget=0.12)
        turns += 1
        assert turns < 20
    assert _ids(stored) == [f"call-{i}" for i in range(10)]        # each once, in order
    assert turns > 1


def test_without_a_budget_everything_is_stored_at_once(tmp_path):
    directory = _spooled(tmp_path, 5)
    stored = []
    done = spool.replay([directory], lambda pairs: stored.append(pairs) or "ok", print)
    assert (done.stored, done.waiting, done.paused) == (5, 0, False)
    assert _ids(stored) == [f"call-{i}" for i in range(5)]
    assert spool.count([directory])["spooled"] == 0


def test_a_failure_keeps_the_record_and_all_after_it(tmp_path):
    directory = _spooled(tmp_path, 4)
    answers = iter(["ok", "fail"])
    done = spool.replay([directory], lambda pairs: next(answers), print, budget=10)
    assert (done.stored, done.waiting, done.paused) == (1, 3, False)
    stored = []
    spool.replay([directory], lambda pairs: stored.append(pairs) or "ok", print)
    # the file is read again from its start: the first record comes again (keyed, harmless)
    assert _ids(stored)[-3:] == ["call-1", "call-2", "call-3"]
