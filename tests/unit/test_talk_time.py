"""How long a call talked: the best evidence, flagged, never beyond the grant."""

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kondge_billing.calls.talk_time import talk_time

AUTH = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
CONNECT = AUTH + timedelta(seconds=20)
STOP = CONNECT + timedelta(seconds=70)


def tt(reported=None, connect=None, disconnect=None, start_connect=None, start_received=None,
       received=STOP, granted=600, answer=False):
    return talk_time(reported=reported, connect=connect, disconnect=disconnect,
                     start_connect=start_connect, start_received=start_received,
                     received=received, authorised_at=AUTH, granted=granted,
                     start_marks_answer=answer)


@pytest.mark.parametrize("kw, seconds, flags", [
    # the session time, when there is one
    ({"reported": 70}, 70, set()),
    ({"reported": 70, "connect": CONNECT, "disconnect": STOP}, 70, set()),
    # missing, or 0 while the h323 times say 70 s: the h323 times
    ({"connect": CONNECT, "disconnect": STOP}, 70,
     {"session-time-missing", "duration-from-h323-times"}),
    ({"reported": 0, "connect": CONNECT, "disconnect": STOP}, 70,
     {"session-time-zero", "duration-from-h323-times"}),
    # the connect time from the leg's Start
    ({"start_connect": CONNECT, "disconnect": STOP}, 70, {"duration-from-h323-times"}),
    # no h323 times: the server's Start and Stop, for a gateway whose Start marks the answer
    ({"start_received": CONNECT, "answer": True}, 70,
     {"session-time-missing", "duration-from-server-times"}),
    ({"reported": 0, "start_received": CONNECT, "answer": True}, 70,
     {"session-time-zero", "duration-from-server-times"}),
    # ...not for one whose Start comes at set-up (Cisco): 0 stands, as unanswered
    ({"reported": 0, "start_received": CONNECT}, 0, set()),
    # 0 with times that say it was not connected (connect = disconnect): 0
    ({"reported": 0, "connect": STOP, "disconnect": STOP}, 0, set()),
    # nothing usable at all: 0, and the CDR says why
    ({}, 0, {"duration-unknown"}),
    # evidence beyond the grant is cut to the grant
    ({"connect": CONNECT, "disconnect": CONNECT + timedelta(hours=2),
      "received": CONNECT + timedelta(hours=2)}, 600,
     {"duration-capped-at-grant"}),
    # a gateway clock in 1970 or 9999: set aside
    ({"reported": 70, "connect": datetime(1970, 1, 1, tzinfo=timezone.utc)}, 70,
     {"connect-time-implausible", "start-from-server-clock"}),
    ({"connect": datetime(9999, 1, 1, tzinfo=timezone.utc), "disconnect": STOP,
      "start_received": CONNECT, "answer": True}, 70,
     {"connect-time-implausible", "duration-from-server-times"}),
])
def test_the_best_evidence_decides(kw, seconds, flags):
    result = tt(**kw)
    assert result.seconds == seconds
    assert flags <= set(result.flags), result.flags


def test_a_reported_session_time_is_not_capped_an_overrun_is_for_the_charge_to_handle():
    assert tt(reported=900, granted=600).seconds == 900


def test_the_start_is_the_connect_time_or_counted_back_from_the_stop():
    assert tt(reported=70, connect=CONNECT).start == CONNECT
    assert tt(reported=70).start == STOP - timedelta(seconds=70)
    assert tt(reported=70, disconnect=STOP - timedelta(seconds=5)).start == \
        STOP - timedelta(seconds=75)


@given(reported=st.one_of(st.none(), st.integers(0, 100_000)),
       connect_at=st.one_of(st.none(), st.integers(-10**9, 10**9)),
       length=st.one_of(st.none(), st.integers(-10**6, 10**6)),
       start_at=st.one_of(st.none(), st.integers(-10**6, 10**6)),
       granted=st.integers(0, 86400), answer=st.booleans())
def test_never_negative_never_beyond_the_grant_unless_the_gateway_said_so(
        reported, connect_at, length, start_at, granted, answer):
    connect = AUTH + timedelta(seconds=connect_at) if connect_at is not None else None
    disconnect = (connect + timedelta(seconds=length)
                  if connect is not None and length is not None else None)
    start = AUTH + timedelta(seconds=start_at) if start_at is not None else None
    result = tt(reported=reported, connect=connect, disconnect=disconnect,
                start_received=start, granted=granted, answer=answer)
    assert result.seconds >= 0
    if not reported:
        assert result.seconds <= granted
        if result.seconds == 0 and reported is None:
            assert result.flags            # a free call says why
    else:
        assert result.seconds == reported
