"""Properties of the request mapping: whatever pairs rlm_python3 hands over.

The hook gets a tuple of (name, value) string pairs. For any of them (any
names, any text including control characters and NUL, duplicates, missing
attributes, values of kilobytes, h323 values with or without their
`name=` lead, and garbage a buggy caller might pass: non-tuples, short
tuples, (name, op, value), bytes), the mapping:

- never raises, and gives a request whose every field has its shape
  (numbers are digits or None, a conf id is upper-case hex words, flags are
  flag words, lengths are bounded, an h323 time of any year and zone is a
  UTC time or None and flagged);
- through the hook with a stand-in radiusd, answers with exact int codes
  and tuples of string pairs, or a refusal;
- round-trips the values that matter: the first User-Name, password,
  caller and called number, the conf id (Cisco or Quintum, with or without
  its lead), the status, the session time, h323 times;
- maps a value as rlm_python3 hands it over (up to its first NUL), and a
  record kept in the spool and read back as it mapped it first.
"""

import json
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kondge_billing.edge import attributes
from kondge_billing.errors import Unavailable, UnknownCard
from kondge_billing.store.gateways import Gateway, GatewayDirectory
from kondge_billing.calls.events import AccessRequest, AccountingRecord
from kondge_billing.edge.request import (MAX_SESSION_TIME, STATUS, access_request,
                                         accounting_record, h323_time, phone_number)
from kondge_billing.calls.service import Billing, Login, Recorded
from tests.support.hook import load_hook

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
GATEWAYS = [Gateway(1, "cisco", "127.0.0.1", "s", "cisco", "optional", "originate", 1),
            Gateway(2, "quintum", "127.0.0.2", "s", "quintum", "optional", "originate", 1),
            Gateway(3, "generic", "127.0.0.3", "s", "generic", "optional", "originate", 1)]
NO_ANSWER = (("Kondge-No-Answer", "1"),)
READ = [attributes.USER_NAME, attributes.USER_PASSWORD, attributes.CALLING_STATION_ID,
        attributes.CALLED_STATION_ID, attributes.SERVICE_TYPE, attributes.ACCT_STATUS_TYPE,
        attributes.ACCT_SESSION_ID, attributes.ACCT_UNIQUE_SESSION_ID, attributes.ACCT_SESSION_TIME,
        attributes.ACCT_DELAY_TIME, attributes.TIMESTAMP, attributes.CISCO_AVPAIR, attributes.QUINTUM_AVPAIR,
        attributes.FLAG, attributes.GATEWAY_ADDRESS]
H323 = list(attributes.H323_REQUEST_NAMES)
NAMES = READ + H323 + ["Quintum-" + n for n in H323] + [
    "NAS-IP-Address", "Proxy-State", "Tunnel-Type:1", "Attr-26.9.99", "", "h323-conf-id ",
    "user-name"]
FLAG = re.compile(r"[a-z][a-z-]*")
CONF = re.compile(r"[0-9A-F]+( [0-9A-F]+)*")

# --- strategies ----------------------------------------------------------------------

texts = st.text(max_size=40)                                   # any text, controls and NUL too
huge = st.builds(lambda c, n: c * n, st.characters(), st.integers(250, 5000))
digits = st.from_regex(r"\+?[0-9]{1,32}", fullmatch=True)
hexwords = st.lists(st.from_regex(r"[0-9A-Fa-f]{8}", fullmatch=True), min_size=1, max_size=4)
# `hh:mm:ss.mmm TZ Ddd Mmm dd yyyy`, each part in and out of its range
h323_times = st.builds(
    "{}{:02d}:{:02d}:{:02d}.{:03d} {} {} {} {:02d} {:04d}".format,
    st.sampled_from(("", "*", ".")), st.integers(0, 29) | st.sampled_from((0, 23)),
    st.integers(0, 61),
    st.integers(0, 61), st.integers(0, 999),
    st.sampled_from(("GMT", "UTC", "PST", "JST", "IST", "AEST", "XYZ", "Z")),
    st.sampled_from(("Wed", "Fri", "Xyz")), st.sampled_from(("Jan", "Feb", "Dec", "Foo")),
    st.integers(0, 39) | st.sampled_from((1, 31)),
    st.integers(0, 9999) | st.sampled_from((1, 9999)))


@st.composite
def values(draw, name):
    """A value for `name`: any text, huge, digits, or its h323 form (with the
    name it carries, another h323 name, or none)."""
    kind = draw(st.sampled_from(("text", "text", "huge", "digits", "h323", "number", "time")))
    if kind == "time":
        return f"{name.removeprefix('Quintum-')}={draw(h323_times)}"
    if kind == "huge":
        return draw(huge)
    if kind == "digits":
        return draw(digits)
    if kind == "number":
        return str(draw(st.integers(-2**40, 2**40)))
    if kind == "h323":
        lead = draw(st.sampled_from([name.removeprefix("Quintum-")] + H323 + [""]))
        return f"{lead}={draw(texts)}" if lead else draw(texts)
    return draw(texts)


@st.composite
def pair_lists(draw):
    """Pairs as rlm_python3 hands them over: (name, value) strings, any order,
    names repeated or missing, the gateway's address usually there."""
    names = draw(st.lists(st.sampled_from(NAMES) | texts, max_size=30))
    pairs = [(name, draw(values(name))) for name in names]
    if draw(st.booleans()):
        address = draw(st.sampled_from([g.address for g in GATEWAYS] + ["10.9.9.9", ""]))
        pairs.insert(draw(st.integers(0, len(pairs))), (attributes.GATEWAY_ADDRESS, address))
    return tuple(pairs)


garbage = st.one_of(st.none(), st.integers(), texts, st.tuples(), st.tuples(texts),
                    st.tuples(texts, texts, texts), st.tuples(texts, st.binary(max_size=8)),
                    st.tuples(st.integers(), texts), st.lists(texts, max_size=2))


@st.composite
def anything(draw):
    """Pairs with garbage mixed in (what a buggy caller might pass)."""
    pairs = list(draw(pair_lists()))
    for _ in range(draw(st.integers(0, 5))):
        pairs.insert(draw(st.integers(0, len(pairs))), draw(garbage))
    return tuple(pairs) if draw(st.integers(0, 9)) else draw(st.sampled_from((None, (), [])))


# --- the mapping: well formed, never raising ------------------------------------------

def no_nul(*values):
    return all(v is None or "\0" not in v for v in values)


def number_shaped(value):
    return value is None or re.fullmatch(r"[0-9]{1,32}", value) is not None


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(anything())
def test_an_access_request_is_well_formed_whatever_the_pairs(pairs):
    req = access_request(pairs)
    assert type(req) is AccessRequest
    assert type(req.gateway_address) is str
    for value in (req.user_name, req.pin, req.caller_raw, req.called_raw, req.stage):
        assert value is None or type(value) is str
    assert number_shaped(req.caller) and number_shaped(req.called)
    assert req.conf_id is None or (len(req.conf_id) <= 64 and CONF.fullmatch(req.conf_id))
    assert type(req.ivr_out) is tuple and all(type(v) is str for v in req.ivr_out)
    assert no_nul(req.user_name, req.pin, req.caller_raw, req.called_raw, req.conf_id)
    assert type(req.is_caller_login) is bool


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(anything())
def test_an_accounting_record_is_well_formed_whatever_the_pairs(pairs):
    rec = accounting_record(pairs, NOW)
    assert type(rec) is AccountingRecord
    assert rec.status in set(STATUS.values()) | {"unknown"}
    assert rec.session_time is None or 0 <= rec.session_time <= MAX_SESSION_TIME
    assert all(FLAG.fullmatch(f) for f in rec.flags)
    assert rec.user_name is None or 0 < len(rec.user_name) <= 32
    for value in (rec.acct_session_id, rec.unique_session_id, rec.caller_raw, rec.called_raw):
        assert value is None or (0 < len(value) <= 64 and value == value.strip())
    assert number_shaped(rec.caller) and number_shaped(rec.called)
    assert rec.conf_id is None or CONF.fullmatch(rec.conf_id)
    assert rec.call_origin in (None, "answer", "originate")
    assert rec.disconnect_cause is None or re.fullmatch(r"[0-9A-Fa-f]{1,8}", rec.disconnect_cause)
    for t in (rec.setup_time, rec.connect_time, rec.disconnect_time, rec.received_at):
        assert t is None or t.utcoffset() == timedelta(0)
    assert re.fullmatch(r"[0-9a-f]{32}", rec.digest)
    assert no_nul(rec.acct_session_id, rec.user_name, rec.caller_raw, rec.called_raw)


@settings(max_examples=300, deadline=None)
@given(h323_times, st.sampled_from((attributes.SETUP_TIME, attributes.CONNECT_TIME, attributes.DISCONNECT_TIME)),
       st.sampled_from(("", "Quintum-")))
@example("23:59:59.999 PST Fri Dec 31 9999", attributes.DISCONNECT_TIME, "")    # found by make fuzz
def test_any_h323_time_is_a_utc_time_or_flagged(raw, name, vendor):
    parsed = h323_time(raw)
    assert (parsed.value is None and parsed.flags) or parsed.value.utcoffset() == timedelta(0)
    rec = accounting_record(((vendor + name, f"{name}={raw}"),), NOW)
    stored = {attributes.SETUP_TIME: rec.setup_time, attributes.CONNECT_TIME: rec.connect_time,
              attributes.DISCONNECT_TIME: rec.disconnect_time}[name]
    assert stored == parsed.value and set(parsed.flags) <= set(rec.flags)


# --- through the hook, with a stand-in radiusd ----------------------------------------

class Capture(Billing):
    """Billing that records what the mapping gave it and answers at once."""

    def __init__(self, answer):
        super().__init__(None, b"k" * 32, GatewayDirectory(lambda: GATEWAYS))
        self.answer, self.seen = answer, []

    def authorize(self, gateway, req):
        self.seen.append(req)
        if self.answer == "refuse":
            raise UnknownCard("no card")
        if self.answer == "down":
            raise Unavailable("database down")
        return Login(Decimal("12.50"), "USD", "en")

    def account(self, gateway, rec):
        self.seen.append(rec)
        if self.answer == "down":
            raise Unavailable("database down")
        return Recorded("recorded", "x", "originate")

    def park(self, pairs, error):
        if self.answer == "down":
            raise Unavailable("database down")
        self.seen.append(("parked", pairs, error))


def exact_pairs(pairs):
    return type(pairs) is tuple and all(
        type(p) is tuple and len(p) in (2, 3) and all(type(v) is str for v in p) for p in pairs)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(anything(), st.sampled_from(("accept", "refuse", "down")))
def test_the_hook_answers_exact_codes_and_string_pairs_whatever_the_pairs(pairs, answer):
    billing = Capture(answer)
    hook, radiusd, _ = load_hook(billing)
    result = hook.authorize(pairs)
    assert type(result) is tuple and len(result) == 3
    code, reply, control = result
    assert type(code) is int and exact_pairs(reply) and exact_pairs(control)
    if billing.seen:                 # a known gateway: the request is the mapping's
        assert billing.seen[0] == access_request(pairs)
        expected = {"accept": radiusd.RLM_MODULE_OK, "refuse": radiusd.RLM_MODULE_REJECT,
                    "down": radiusd.RLM_MODULE_FAIL}[answer]
        assert code == expected
    else:                            # no gateway it knows: dropped, never accepted
        assert code == radiusd.RLM_MODULE_FAIL and control == NO_ANSWER
    if code == radiusd.RLM_MODULE_REJECT:
        assert not any("credit" in name for name, *_ in reply)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair_lists())
@example((("Timestamp", "\u00b9"),))       # found by CI: "¹".isdigit(), int("¹") raised
def test_accounting_through_the_hook_is_answered_or_left_for_a_retry(pairs):
    billing = Capture("accept")
    hook, radiusd, _ = load_hook(billing)
    result = hook.accounting(pairs)
    if access_request(pairs).gateway_address in {g.address for g in GATEWAYS}:
        assert result == radiusd.RLM_MODULE_OK
        if accounting_record(pairs, datetime.now(timezone.utc)).status == "unknown":
            assert billing.seen == [("parked", pairs, billing.seen[0][2])]   # set aside whole
        else:
            assert billing.seen[0] == accounting_record(pairs, billing.seen[0].received_at)
    else:                            # no gateway: not answered (kept nowhere)
        assert result == (radiusd.RLM_MODULE_FAIL, (), NO_ANSWER)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(pair_lists())
def test_a_record_kept_in_the_spool_maps_as_it_did_when_received(tmp_path, pairs):
    pairs = ((attributes.GATEWAY_ADDRESS, "127.0.0.1"),) + pairs
    billing = Capture("down")
    spool = tmp_path / f"spool-{len(list(tmp_path.iterdir()))}"
    hook, radiusd, _ = load_hook(billing, spool=spool)
    assert hook.accounting(pairs) == radiusd.RLM_MODULE_OK          # kept, answered
    kept = json.loads((spool / "records.jsonl").read_text().splitlines()[-1])
    back = tuple((n, v) for n, v in kept["pairs"])
    assert back == pairs
    assert accounting_record(back, NOW) == accounting_record(pairs, NOW)


# --- the values that matter round-trip ------------------------------------------------

clean = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(st.data(), clean, clean, digits, digits, hexwords, st.sampled_from(("", "Quintum-")),
       st.booleans())
def test_what_an_access_request_says_comes_through(data, user, pin, caller, called, words,
                                                  vendor, lead):
    conf = " ".join(words)
    pairs = [(attributes.USER_NAME, user), (attributes.USER_PASSWORD, pin),
             (attributes.CALLING_STATION_ID, caller), (attributes.CALLED_STATION_ID, called),
             (vendor + attributes.CONF_ID, ("h323-conf-id=" if lead else "") + conf)]
    pairs = data.draw(st.permutations(pairs))
    # later copies and other attributes change nothing (the other vendor's
    # conf id would: Cisco's name is read first)
    others = [n for n in NAMES if n != ("" if vendor else "Quintum-") + attributes.CONF_ID]
    pairs += data.draw(st.lists(st.tuples(st.sampled_from(others), texts), max_size=8))
    req = access_request(tuple(pairs))
    assert (req.user_name, req.pin, req.caller_raw) == (user, pin, caller)
    assert req.caller == caller.removeprefix("+") and req.called == phone_number(called)
    assert req.conf_id == conf.upper()


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(STATUS)), st.integers(0, MAX_SESSION_TIME),
       st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)),
       st.sampled_from(("", "*", ".")), st.sampled_from(("", "Quintum-")), st.booleans(),
       st.sampled_from(("answer", "originate")))
def test_what_an_accounting_record_says_comes_through(status, seconds, when, mark, vendor, lead,
                                                      origin):
    when = when.replace(microsecond=when.microsecond // 1000 * 1000, tzinfo=timezone.utc)
    stamp = mark + when.strftime("%H:%M:%S.") + f"{when.microsecond // 1000:03d}" + \
        when.strftime(" GMT %a %b %d %Y")

    def h323(name, value):
        return (vendor + name, (f"{name}=" if lead else "") + value)
    rec = accounting_record((
        (attributes.ACCT_STATUS_TYPE, status), (attributes.ACCT_SESSION_TIME, str(seconds)),
        h323(attributes.CONNECT_TIME, stamp), h323(attributes.CALL_ORIGIN, origin),
        (attributes.ACCT_SESSION_ID, "000B5571")), NOW)
    assert rec.status == STATUS[status] and rec.session_time == seconds
    assert rec.connect_time == when and rec.call_origin == origin
    assert rec.flags == {"": (), "*": ("clock-unsynchronised",), ".": ("clock-untrusted",)}[mark]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair_lists(), st.data())
def test_a_value_maps_as_rlm_python3_hands_it_over_up_to_its_first_nul(pairs, data):
    """The journal and the quarantine read records whole, NUL and all."""
    tails = data.draw(st.lists(texts, min_size=len(pairs), max_size=len(pairs)))
    whole = tuple((n, v + "\0" + t) for (n, v), t in zip(pairs, tails))
    assert accounting_record(whole, NOW) == accounting_record(pairs, NOW)
    assert access_request(whole) == access_request(pairs)


@pytest.mark.parametrize("value, seconds", [("0" * 4301, 0), ("0" * 4300 + "7", 7), (" 70 ", 70),
                                            ("9" * 5000, None), ("\u0663", None)])
def test_a_session_time_of_any_length_maps_without_raising(value, seconds):
    rec = accounting_record(((attributes.ACCT_SESSION_TIME, value),), NOW)
    assert rec.session_time == seconds
    assert ("session-time-invalid" in rec.flags) == (seconds is None)
