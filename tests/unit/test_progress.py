"""The one progress bar of long operator jobs."""

import io

from kondge_billing.progress import Progress, factory, quiet


def test_a_bar_draws_share_count_and_seconds_and_ends_its_line():
    out = io.StringIO()
    bar = Progress("loading", 200, stream=out, enabled=True)
    bar.advance(50)
    bar.finish()
    text = out.getvalue()
    assert "loading" in text and " 25% 50/200" in text
    assert text.endswith(" s\n") and "100% 200/200" in text


def test_silent_when_told_and_for_small_jobs():
    assert not quiet("x", 10**6).enabled
    assert factory(True)("x", 1).enabled
    assert not factory(True, at_least=10_000)("x", 9_999).enabled
    assert factory(True, at_least=10_000)("x", 10_000).enabled
    assert not factory(False)("x", 10**6).enabled
    out = io.StringIO()
    bar = Progress("x", 10, stream=out, enabled=False)
    bar.advance(10)
    bar.finish()
    assert out.getvalue() == ""
