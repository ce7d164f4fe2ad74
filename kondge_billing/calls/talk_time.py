"""How long a call talked, and when it started: from the best evidence.

Pure: the facts in, the answer and the flags that say where it came from
out. No clock, no database.

The evidence, in order:
1. Acct-Session-Time, when it is there, usable and above zero.
2. The h323 connect and disconnect times (of the Stop, or the connect time
   of the leg's Start), when both are there and plausible: the call talked
   from connect to disconnect. A session time of 0 is believed only when
   these do not say the call was connected.
3. The server's own clock: from the Start it received to the Stop, for a
   gateway whose accounting Start marks the answer (generic RFC gateways;
   Cisco and Quintum send their Start at set-up, before the call rings).
Time taken from 2 or 3 is never more than the call was granted: beyond the
grant the gateway would have cut it, so that is all the evidence can
charge. No evidence at all: 0 seconds, flagged duration-unknown (the CDR
says why the call is free).

Times before the authorisation (less a day) or after the Stop was received
(plus an hour) are not plausible (a gateway clock in 1970 or 9999): they
are set aside, flagged, and the call is placed by the server's clock.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

EARLIEST = timedelta(days=1)      # before the authorisation, at most
LATEST = timedelta(hours=1)       # after the Stop was received, at most
UNATTENDED = timedelta(days=30)   # a call nobody authorised: how far back it may start


@dataclass(frozen=True)
class TalkTime:
    seconds: int
    start: datetime                  # when it was answered: the call is priced from here
    flags: tuple[str, ...]


def _plausible(when: datetime | None, earliest: datetime, latest: datetime) -> bool:
    return when is not None and earliest <= when <= latest


def talk_time(*, reported: int | None, connect: datetime | None,
              disconnect: datetime | None, start_connect: datetime | None,
              start_received: datetime | None, received: datetime,
              authorised_at: datetime | None, granted: int | None,
              start_marks_answer: bool) -> TalkTime:
    """The seconds to bill and the start to price them from.

    reported: Acct-Session-Time (None: missing or unusable); connect,
    disconnect: the Stop's h323 times; start_connect: the connect time the
    leg's Start carried; start_received: when the server received the leg's
    Start; received: when it received the Stop (first, for a record read
    back from the spool); authorised_at, granted: the call's hold."""
    flags: list[str] = []
    earliest = (authorised_at - EARLIEST) if authorised_at else received - UNATTENDED
    latest = received + LATEST
    connected = connect if connect is not None else start_connect
    times_given = connected is not None or disconnect is not None
    if connected is not None and not _plausible(connected, earliest, latest):
        flags.append("connect-time-implausible")
        connected = None
    if disconnect is not None and not _plausible(disconnect, earliest, latest):
        flags.append("disconnect-time-implausible")
        disconnect = None
    h323 = None
    if connected is not None and disconnect is not None and disconnect >= connected:
        h323 = int((disconnect - connected).total_seconds())
    server = None
    if start_marks_answer and start_received is not None and received >= start_received:
        server = int((received - start_received).total_seconds())

    seconds, derived = 0, False
    if reported:
        seconds = reported
    elif h323:
        seconds, derived = h323, True
        flags.append("session-time-zero" if reported == 0 else "session-time-missing")
        flags.append("duration-from-h323-times")
    elif server and reported is None:
        seconds, derived = server, True
        flags.append("session-time-missing")
        flags.append("duration-from-server-times")
    elif server and reported == 0 and not times_given:
        seconds, derived = server, True
        flags.append("session-time-zero")
        flags.append("duration-from-server-times")
    elif reported is None and h323 is None:
        flags.append("duration-unknown")
    if reported is None and "session-time-missing" not in flags:
        flags.append("session-time-missing")
    if derived and granted is not None and seconds > granted:
        seconds = granted
        flags.append("duration-capped-at-grant")

    end = disconnect or received
    if connected is not None and not derived:
        start = connected
    elif derived and h323:
        start = connected
    else:
        start = end - timedelta(seconds=seconds)
        if seconds:
            flags.append("start-from-server-clock")
    return TalkTime(seconds, start, tuple(flags))
