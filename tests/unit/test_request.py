from datetime import datetime, timezone

import pytest

from kondge_billing.identifiers import card_number_problem, luhn_valid
from kondge_billing.edge.request import (access_request, accounting_record, conf_id, h323_time,
                                         phone_number)
from kondge_billing.calls.service import call_identity
from kondge_billing.store.gateways import Gateway

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def gw(dialect="cisco", billed_leg="originate"):
    return Gateway(1, "gw", "127.0.0.1", "s", dialect, "optional", billed_leg, 1)


def test_h323_time_cisco_form():
    parsed = h323_time("14:30:25.429 GMT Wed Jan 23 2002")
    assert parsed.value == datetime(2002, 1, 23, 14, 30, 25, 429000, tzinfo=timezone.utc)
    assert parsed.flags == ()


def test_h323_time_zone_and_sync_marks():
    parsed = h323_time("*09:30:25.000 EST Wed Jan 23 2002")
    assert parsed.value == datetime(2002, 1, 23, 14, 30, 25, tzinfo=timezone.utc)
    assert parsed.flags == ("clock-unsynchronised",)
    assert h323_time(".14:30:25.429 UTC Wed Jan 23 2002").flags == ("clock-untrusted",)


@pytest.mark.parametrize("raw, flag", [
    ("yesterday", "time-unparsed"),
    ("14:30:25.429 XYZ Wed Jan 23 2002", "time-zone-unknown"),
    ("25:30:25.429 GMT Wed Jan 23 2002", "time-unparsed"),
    ("14:30:25.429 GMT Wed Foo 23 2002", "time-unparsed"),
    ("\u0661\u0664:30:25.429 GMT Wed Jan 23 2002", "time-unparsed"),   # other digits
])
def test_h323_time_unparseable_is_flagged(raw, flag):
    parsed = h323_time(raw)
    assert parsed.value is None and flag in parsed.flags


@pytest.mark.parametrize("raw", ["23:59:59.999 PST Fri Dec 31 9999",
                                 "00:00:00.000 JST Mon Jan 01 0001"])
def test_h323_time_beyond_what_utc_holds_is_flagged_not_raised(raw):
    parsed = h323_time(raw)
    assert parsed.value is None and parsed.flags == ("time-unparsed",)
    rec = accounting_record(stop_pairs(**{"h323-disconnect-time": "h323-disconnect-time=" + raw}),
                            NOW)
    assert rec.disconnect_time is None and "time-unparsed" in rec.flags


@pytest.mark.parametrize("raw, number", [
    ("+447911123456", "447911123456"), ("15551234", "15551234"), ("abc", None),
    ("1" * 33, None), (" 123 ", "123"), ("sip:123@x", None), (None, None)])
def test_phone_number(raw, number):
    assert phone_number(raw) == number


def test_conf_id_one_spelling():
    assert conf_id("931c146b  0f4411d6 AB5591F0 CBF3D765") == "931C146B 0F4411D6 AB5591F0 CBF3D765"
    assert conf_id("not hex!") is None


def test_access_request_strips_h323_names_and_reads_avpairs():
    req = access_request((
        ("User-Name", "1000000008"), ("User-Password", "1234"),
        ("Called-Station-Id", "+447911123456"),
        ("h323-conf-id", "h323-conf-id=931C146B 0F4411D6 AB5591F0 CBF3D765"),
        ("Cisco-AVPair", "h323-ivr-out=FOLLOW_ON_FLAG:0"), ("Cisco-AVPair", "x=y"),
        ("Kondge-Gateway-Address", "10.0.0.1")))
    assert req.called == "447911123456"
    assert req.conf_id == "931C146B 0F4411D6 AB5591F0 CBF3D765"
    assert req.ivr_out == ("FOLLOW_ON_FLAG:0",)
    assert req.gateway_address == "10.0.0.1"


def test_stage_detection():
    def req(called=None, service=None):
        pairs = [("User-Name", "1")]
        if called is not None:
            pairs.append(("Called-Station-Id", called))
        if service:
            pairs.append(("Service-Type", service))
        return access_request(pairs)
    # the gateway names the stage with Service-Type; otherwise the database
    # decides by the number called (radius_card.sql; tests/db)
    assert req().stage is None
    assert req("447911123456").stage is None
    assert req("447911123456", "Authenticate-Only").stage == "login"
    assert req("18005550100", "Outbound-User").stage == "destination"


def stop_pairs(**extra):
    pairs = {"Acct-Status-Type": "Stop", "Acct-Session-Id": "000B5571",
             "Acct-Session-Time": "125", "User-Name": "1000000008",
             "Called-Station-Id": "447911123456",
             "h323-conf-id": "h323-conf-id=931C146B 0F4411D6 AB5591F0 CBF3D765",
             "h323-call-origin": "h323-call-origin=originate",
             "h323-connect-time": "h323-connect-time=14:30:25.429 GMT Wed Jan 23 2002",
             "h323-disconnect-time": "h323-disconnect-time=14:32:30.429 GMT Wed Jan 23 2002",
             "h323-disconnect-cause": "h323-disconnect-cause=10"}
    pairs.update(extra)
    return tuple((k, v) for k, v in pairs.items() if v is not None)


def test_accounting_record_parses_a_cisco_stop():
    rec = accounting_record(stop_pairs(), NOW)
    assert rec.status == "stop" and rec.session_time == 125
    assert rec.call_origin == "originate" and rec.disconnect_cause == "10"
    assert rec.connect_time == datetime(2002, 1, 23, 14, 30, 25, 429000, tzinfo=timezone.utc)
    assert rec.flags == ()
    assert call_identity(gw(), rec) == ("931C146B 0F4411D6 AB5591F0 CBF3D765", True, [])


def test_unparseable_times_are_flagged_and_left_to_the_talk_time_rules():
    rec = accounting_record(stop_pairs(**{
        "h323-connect-time": "h323-connect-time=garbage",
        "h323-disconnect-time": "h323-disconnect-time=garbage"}), NOW)
    assert rec.disconnect_time is None and rec.connect_time is None
    assert rec.received_at == NOW and "time-unparsed" in rec.flags


def test_the_digest_tells_a_retransmission_from_another_stop():
    first = accounting_record(stop_pairs(), NOW)
    again = accounting_record(stop_pairs(**{"Acct-Delay-Time": "5"}), NOW)
    other = accounting_record(stop_pairs(**{"Acct-Session-Time": "126"}), NOW)
    assert first.digest == again.digest != other.digest


@pytest.mark.parametrize("raw", ["4294967295", "100001", "-1", "12.5", "", "0x10"])
def test_a_session_time_that_is_no_talk_time_is_none_and_flagged(raw):
    rec = accounting_record(stop_pairs(**{"Acct-Session-Time": raw}), NOW)
    assert rec.session_time is None and "session-time-invalid" in rec.flags


def test_a_value_ends_at_its_first_nul_as_rlm_python3_hands_it_over():
    """The journal and the quarantine read a record whole: it maps as the hook saw it."""
    whole = accounting_record(stop_pairs(**{"Acct-Session-Id": "000B5571\x00tail",
                                            "User-Name": "1000000008\x00\x00"}), NOW)
    seen = accounting_record(stop_pairs(**{"Acct-Session-Id": "000B5571"}), NOW)
    assert whole.acct_session_id == "000B5571" and whole.user_name == "1000000008"
    assert whole == seen
    req = access_request((("User-Name", "1000000008\x00x"), ("User-Password", "1234\x00")))
    assert req.user_name == "1000000008" and req.pin == "1234"


@pytest.mark.parametrize("stamp", ["\u00b9", "\u0663\u0660", "12a", " ", "123456789012"])
def test_a_timestamp_that_is_no_ascii_count_of_seconds_leaves_the_time_received(stamp):
    """"¹" passes str.isdigit() and int() refuses it; "٣٠" int() reads as 30."""
    rec = accounting_record(stop_pairs(Timestamp=stamp), NOW)
    assert rec.received_at == NOW and rec.status == "stop"


def test_a_timestamp_of_seconds_is_the_time_first_received():
    rec = accounting_record(stop_pairs(Timestamp="1764590400"), NOW)
    assert rec.received_at == datetime(2025, 12, 1, 12, 0, tzinfo=timezone.utc)


def test_odd_values_are_flagged_not_raised():
    rec = accounting_record(stop_pairs(**{
        "Acct-Session-Time": "-5", "Calling-Station-Id": "anonymous",
        "h323-call-origin": "h323-call-origin=sideways", "h323-conf-id": "h323-conf-id=zz"}),
        NOW)
    assert rec.session_time is None and rec.caller is None and rec.conf_id is None
    assert {"session-time-invalid", "caller-invalid", "call-origin-unknown",
            "conf-id-invalid"} <= set(rec.flags)


def test_generic_identity_uses_session_id_and_missing_ids_use_a_digest():
    rec = accounting_record(stop_pairs(), NOW)
    assert call_identity(gw("generic"), rec) == ("000B5571", False, [])
    bare = accounting_record((("Acct-Status-Type", "Stop"), ("Acct-Session-Time", "5")), NOW)
    first = call_identity(gw("generic"), bare)
    again = call_identity(gw("generic"), accounting_record(
        (("Acct-Status-Type", "Stop"), ("Acct-Session-Time", "5"), ("Acct-Delay-Time", "9")),
        NOW))
    assert first == again and first[0].startswith("digest:") and "call-id-missing" in first[2]


@pytest.mark.parametrize("number, valid", [
    ("79927398713", True), ("79927398710", False), ("1000000008", True),
    ("1000000001", False), ("4539578763621486", True), ("0000", True)])
def test_luhn(number, valid):
    assert luhn_valid(number) is valid


def test_card_number_problems():
    assert card_number_problem("1000000008", "luhn") is None
    assert "check digit" in card_number_problem("1000000001", "luhn")
    assert card_number_problem("1000000001", "none") is None
    assert "4 to 20 digits" in card_number_problem("12a4", "none")
