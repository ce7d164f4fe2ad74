"""Turning RADIUS pairs into plain requests, at the edge.

Nothing here trusts the packet: every value is checked for shape and
length, and what does not fit becomes a refusal (Access-Request) or a flag
on the record (accounting), never an exception out of the hook.
"""

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ..calls.events import AccessRequest, AccountingRecord
from . import attributes

# The longest session time taken as given (a day and a bit); more, like
# 4294967295 (an unsigned -1), is not a talk time.
MAX_SESSION_TIME = 100_000
DIGITS = re.compile(r"^[0-9]{1,32}\Z")


def collect(pairs) -> dict[str, list[str]]:
    """Pairs as FreeRADIUS hands them over -> {name: [values]}.

    A value ends at its first NUL: rlm_python3 hands the hook a string only
    up to there, so a record read back whole (the journal of answered
    accounting, the quarantine) maps as the hook saw it, and no NUL
    reaches the database (which refuses one in text)."""
    result: dict[str, list[str]] = {}
    for item in pairs or ():
        if not isinstance(item, tuple) or len(item) < 2:
            continue
        name, value = item[0], item[-1]
        if isinstance(name, str) and isinstance(value, str):
            result.setdefault(name, []).append(value.split("\0", 1)[0])
    return result


def _first(values: dict, name: str) -> str | None:
    found = values.get(name)
    return found[0] if found else None


def h323_value(values: dict, h323_name: str) -> str | None:
    """An h323 attribute from either vendor, without its "name=" lead."""
    for name in (h323_name, "Quintum-" + h323_name):
        raw = _first(values, name)
        if raw is not None:
            prefix = h323_name + "="
            return raw[len(prefix):] if raw.startswith(prefix) else raw
    return None


def avpairs(values: dict) -> dict[str, list[str]]:
    """Cisco-AVPair / Quintum-AVPair "key=value" items, by key."""
    result: dict[str, list[str]] = {}
    for name in (attributes.CISCO_AVPAIR, attributes.QUINTUM_AVPAIR):
        for item in values.get(name, ()):
            key, sep, value = item.partition("=")
            if sep:
                result.setdefault(key.strip(), []).append(value.strip())
    return result


def phone_number(raw: str | None) -> str | None:
    """A caller or called number: digits, an optional leading '+' dropped.

    Anything else (letters, a SIP URI, over 32 digits) is not a number.
    """
    if raw is None:
        return None
    text = raw.strip()
    if text.startswith("+"):
        text = text[1:]
    return text if DIGITS.match(text) else None


def conf_id(raw: str | None) -> str | None:
    """h323-conf-id in one spelling: upper-case hex words, single spaces."""
    if raw is None:
        return None
    words = raw.upper().split()
    text = " ".join(words)
    if not text or len(text) > 64 or not re.fullmatch(r"[0-9A-F ]+", text):
        return None
    return text


def stage_named(service_type: str | None) -> str | None:
    """The stage the gateway names with Service-Type, if it does (Planet,
    Quintum): Authenticate-Only = login, Outbound-User = destination.
    Otherwise the database decides by the number called (radius_card.sql)."""
    if service_type == attributes.SERVICE_AUTHENTICATE_ONLY:
        return "login"
    if service_type == attributes.SERVICE_OUTBOUND:
        return "destination"
    return None


def access_request(pairs) -> AccessRequest:
    values = collect(pairs)
    called_raw = _first(values, attributes.CALLED_STATION_ID)
    caller_raw = _first(values, attributes.CALLING_STATION_ID)
    return AccessRequest(
        gateway_address=_first(values, attributes.GATEWAY_ADDRESS) or "",
        user_name=_first(values, attributes.USER_NAME),
        pin=_first(values, attributes.USER_PASSWORD),
        caller=phone_number(caller_raw),
        caller_raw=caller_raw,
        called=phone_number(called_raw),
        called_raw=called_raw,
        conf_id=conf_id(h323_value(values, attributes.CONF_ID)),
        stage=stage_named(_first(values, attributes.SERVICE_TYPE)),
        ivr_out=tuple(avpairs(values).get(attributes.IVR_OUT, ())),
    )


# --- h323 times --------------------------------------------------------------

_H323_TIME = re.compile(
    r"^(?P<sync>[*.])?(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2})(?:\.(?P<ms>\d{1,3}))?"
    r"\s+(?P<tz>[A-Za-z]{1,5})\s+(?:[A-Za-z]{3}\s+)?(?P<mon>[A-Za-z]{3})\s+(?P<day>\d{1,2})"
    r"\s+(?P<year>\d{4})$", re.ASCII)     # \d: ASCII digits, not "١٤"
_MONTHS = {m: i for i, m in enumerate(
    "jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}
# Abbreviations the gateways use; hours east of UTC.
_ZONES = {"GMT": 0, "UTC": 0, "UT": 0, "Z": 0, "WET": 0, "BST": 1, "CET": 1, "MET": 1,
          "CEST": 2, "MEST": 2, "EET": 2, "EEST": 3, "MSK": 3, "IST": 5.5, "HKT": 8,
          "SGT": 8, "JST": 9, "KST": 9, "AEST": 10, "EST": -5, "EDT": -4, "CST": -6,
          "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7}


@dataclass(frozen=True)
class ParsedTime:
    value: datetime | None
    flags: tuple[str, ...] = ()


def h323_time(raw: str | None) -> ParsedTime:
    """`hh:mm:ss.mmm TZ Ddd Mmm dd yyyy`, optionally led by '*' or '.'."""
    if raw is None or not raw.strip():
        return ParsedTime(None)
    match = _H323_TIME.match(raw.strip())
    if not match:
        return ParsedTime(None, ("time-unparsed",))
    flags = []
    if match["sync"] == "*":
        flags.append("clock-unsynchronised")
    elif match["sync"] == ".":
        flags.append("clock-untrusted")
    zone = _ZONES.get(match["tz"].upper())
    if zone is None:
        return ParsedTime(None, tuple(flags) + ("time-zone-unknown",))
    month = _MONTHS.get(match["mon"].lower())
    try:
        value = datetime(int(match["year"]), month or 0, int(match["day"]), int(match["h"]),
                         int(match["m"]), int(match["s"]),
                         int((match["ms"] or "0").ljust(3, "0")) * 1000,
                         tzinfo=timezone(timedelta(hours=zone)))
        # OverflowError: a time near year 1 or 9999 that UTC cannot hold
        return ParsedTime(value.astimezone(timezone.utc), tuple(flags))
    except (ValueError, TypeError, OverflowError):
        return ParsedTime(None, tuple(flags) + ("time-unparsed",))


# --- accounting --------------------------------------------------------------

STATUS = {"Start": "start", "Stop": "stop", "Interim-Update": "interim",
          "Alive": "interim", "Accounting-On": "on", "Accounting-Off": "off",
          "1": "start", "2": "stop", "3": "interim", "7": "on", "8": "off"}


def _short(raw: str | None, limit: int = 64) -> str | None:
    if raw is None:
        return None
    text = raw.strip()
    return text[:limit] if text else None


def accounting_record(pairs, received_at: datetime) -> AccountingRecord:
    """An Accounting-Request; `received_at` is now, unless the record carries
    the time it was first received (Timestamp, in a record read back from
    the spool)."""
    values = collect(pairs)
    # flags the server itself put on the record (a quarantined record replayed)
    flags: list[str] = [f for f in values.get(attributes.FLAG, ())
                        if re.fullmatch(r"[a-z][a-z-]{0,31}", f)]
    stamp = (_first(values, attributes.TIMESTAMP) or "").strip()
    # ASCII digits only: str.isdigit() takes "¹" too, which int() refuses
    if stamp.isascii() and stamp.isdigit() and len(stamp) <= 11:
        received_at = datetime.fromtimestamp(int(stamp), timezone.utc)

    raw_time = _first(values, attributes.ACCT_SESSION_TIME)
    session_time = None
    if raw_time is not None:
        # ASCII digits; int() is given no more than 10 of them (it refuses
        # over 4,300, leading zeros included)
        digits = raw_time.strip()
        significant = digits.lstrip("0") or "0"
        if (re.fullmatch(r"[0-9]+", digits) and len(significant) <= 10
                and int(significant) <= MAX_SESSION_TIME):
            session_time = int(significant)
        else:
            flags.append("session-time-invalid")

    times = {}
    for key, name in (("setup", attributes.SETUP_TIME), ("connect", attributes.CONNECT_TIME),
                      ("disconnect", attributes.DISCONNECT_TIME)):
        parsed = h323_time(h323_value(values, name))
        times[key] = parsed.value
        flags.extend(f for f in parsed.flags if f not in flags)

    status = STATUS.get((_first(values, attributes.ACCT_STATUS_TYPE) or "").strip(), "unknown")

    origin = (h323_value(values, attributes.CALL_ORIGIN) or "").strip().lower() or None
    if origin not in (None, "answer", "originate"):
        flags.append("call-origin-unknown")
        origin = None
    raw_conf = h323_value(values, attributes.CONF_ID)
    cid = conf_id(raw_conf)
    if raw_conf is not None and cid is None:
        flags.append("conf-id-invalid")
    caller_raw = _first(values, attributes.CALLING_STATION_ID)
    caller = phone_number(caller_raw)
    if caller_raw and caller is None:
        flags.append("caller-invalid")
    called_raw = _first(values, attributes.CALLED_STATION_ID)
    called = phone_number(called_raw)
    if called_raw and called is None:
        flags.append("called-invalid")
    cause = (h323_value(values, attributes.DISCONNECT_CAUSE) or "").strip()[:8] or None
    call_type = (h323_value(values, attributes.CALL_TYPE) or "").strip()[:16] or None
    digest = hashlib.sha256(repr((
        status, _first(values, attributes.ACCT_SESSION_ID), raw_time,
        h323_value(values, attributes.CONNECT_TIME), h323_value(values, attributes.DISCONNECT_TIME),
        h323_value(values, attributes.DISCONNECT_CAUSE), _first(values, attributes.USER_NAME),
        caller_raw, called_raw)).encode("utf-8", "backslashreplace")).hexdigest()[:32]

    return AccountingRecord(
        gateway_address=_first(values, attributes.GATEWAY_ADDRESS) or "",
        status=status,
        acct_session_id=_short(_first(values, attributes.ACCT_SESSION_ID)),
        unique_session_id=_short(_first(values, attributes.ACCT_UNIQUE_SESSION_ID)),
        conf_id=cid,
        call_origin=origin,
        user_name=_short(_first(values, attributes.USER_NAME), 32),
        caller=caller,
        called=called,
        session_time=session_time,
        setup_time=times["setup"],
        connect_time=times["connect"],
        disconnect_time=times["disconnect"],
        disconnect_cause=cause if cause and re.fullmatch(r"[0-9A-Fa-f]{1,8}", cause) else None,
        flags=tuple(flags),
        call_type=call_type,
        caller_raw=_short(caller_raw),
        called_raw=_short(called_raw),
        received_at=received_at,
        digest=digest,
    )
