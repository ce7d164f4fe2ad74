"""tests/support/waiting.py: a wait ends when its condition holds, or at its
deadline with a message that names what was awaited."""

import time

import pytest

from tests.support.waiting import poll, wait_for


def counting(true_from):
    calls = []

    def check():
        calls.append(1)
        return len(calls) >= true_from
    return check, calls


def test_poll_returns_when_the_condition_holds_and_asks_no_more():
    check, calls = counting(3)
    before = time.monotonic()
    done = poll(check, 30, step=0.001)
    assert done is not None and done >= before
    assert len(calls) == 3                      # not asked again once it held


def test_poll_gives_none_at_the_deadline():
    check, calls = counting(10**9)
    assert poll(check, 0.05, step=0.01) is None
    assert len(calls) >= 2                      # it asked more than once meanwhile


def test_ignored_exceptions_count_as_not_yet_and_others_are_raised():
    tries = []

    def flaky():
        tries.append(1)
        if len(tries) < 3:
            raise ConnectionError("down")
        return True
    assert poll(flaky, 30, step=0.001, ignore=ConnectionError) is not None
    assert len(tries) == 3

    def broken():
        raise KeyError("bug")
    with pytest.raises(KeyError):
        poll(broken, 30, step=0.001, ignore=ConnectionError)


def test_wait_for_names_what_it_waited_for_and_the_detail():
    with pytest.raises(AssertionError, match=r"^the spool drained not within 0.05 s: 3 left$"):
        wait_for("the spool drained", lambda: False, 0.05, step=0.01, detail=lambda: "3 left")
    with pytest.raises(AssertionError, match=r"^node2 promoted not within 0.05 s$"):
        wait_for("node2 promoted", lambda: False, 0.05, step=0.01)


def test_wait_for_returns_without_failing_when_the_condition_holds():
    check, calls = counting(2)
    assert wait_for("twice asked", check, 30, step=0.001) > 0
    assert len(calls) == 2
