"""What a gateway asks, as plain facts: the call service's input.

The edge (edge/request.py) builds these from RADIUS pairs, checked for
shape; the call service (service.py) reads them and never sees a pair.
"""

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class AccessRequest:
    """An Access-Request. A caller (ANI) login is one whose User-Name is the
    Calling-Station-Id and whose password is empty (Cisco's ANI
    pre-authentication; Quintum's IVR types 4, 5 and 9)."""

    gateway_address: str
    user_name: str | None
    pin: str | None
    caller: str | None
    caller_raw: str | None
    called: str | None
    called_raw: str | None
    conf_id: str | None
    stage: str | None               # login | destination, if the gateway names it
    ivr_out: tuple[str, ...] = ()

    @property
    def is_caller_login(self) -> bool:
        name = (self.user_name or "").strip()
        return bool(name) and name == (self.caller_raw or "").strip() and not self.pin


@dataclass(frozen=True)
class AccountingRecord:
    """An Accounting-Request as the gateway sent it, checked for shape.

    Numbers are as sent (`caller`, `called`: digits with a leading '+'
    dropped; `caller_raw`, `called_raw`: the text); the service puts them
    through the gateway's numbering rules. `session_time` is None when the
    record has none or an unusable one (then flagged session-time-invalid).
    `digest` is what identifies this record's content: a retransmission
    repeats it, another Stop under the same ids does not."""

    gateway_address: str
    status: str                     # start | stop | interim | on | off | unknown
    acct_session_id: str | None
    unique_session_id: str | None
    conf_id: str | None
    call_origin: str | None         # answer | originate | None
    user_name: str | None
    caller: str | None
    called: str | None
    session_time: int | None
    setup_time: datetime | None
    connect_time: datetime | None
    disconnect_time: datetime | None
    disconnect_cause: str | None
    flags: tuple[str, ...] = field(default=())
    call_type: str | None = None    # h323-call-type: VoIP | Telephony | None
    caller_raw: str | None = None
    called_raw: str | None = None
    received_at: datetime | None = None
    digest: str = ""
