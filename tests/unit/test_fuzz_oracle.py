"""The fuzzer's own footing (bench/fuzz.py, fuzz_packets.py, radius_wire.py).

Its packets are what pyrad makes (authenticators, the hidden password,
Message-Authenticator); its model of what FreeRADIUS drops says silence for
each broken packet and nothing for a good one; its judge flags every answer
it must (an answer to a packet that must get none, an Access-Accept of a
wrong PIN, credit in a reject, a forged reply) and none that is right; and
a batch is the same bytes for the same seed. No server: packets and
answers are made here.
"""

import pytest
from pyrad import packet

from bench import fuzz
from bench import fuzz_packets as fp
from bench import radius_wire as wire
from tests.support.radius import DICTIONARY

DICT = wire.project_dictionary(fuzz.HOME / "freeradius" / "dictionary")
WORLD, PROBE = fuzz.world_of(3, fuzz.offline_gateways())
CISCO = WORLD.gateway_at("127.0.0.1")
MA_GATEWAY = WORLD.gateway_at("127.0.0.4")
CARD, PIN = sorted(WORLD.cards.items())[0]


def pyrad_access(secret=CISCO.secret, pin=PIN, ma=False, user=CARD, caller="15551234567"):
    pkt = packet.AuthPacket(code=packet.AccessRequest, secret=secret, dict=DICTIONARY, id=9)
    pkt.AddAttribute("User-Name", user)
    pkt["User-Password"] = pkt.PwCrypt(pin)
    pkt.AddAttribute("Calling-Station-Id", caller)
    pkt.AddAttribute("Called-Station-Id", "18005550100")
    if ma:
        pkt.add_message_authenticator()
    return pkt.RequestPacket()


def pyrad_accounting(secret=CISCO.secret):
    pkt = packet.AcctPacket(code=packet.AccountingRequest, secret=secret, dict=DICTIONARY, id=4)
    pkt.AddAttribute("Acct-Status-Type", "Start")
    pkt.AddAttribute("Acct-Session-Id", "000B5571")
    return pkt.RequestPacket()


def probe(data, source="127.0.0.1", port="auth"):
    gateway = WORLD.gateway_at(source)
    silent = wire.silent_reasons(data, port, gateway.secret if gateway else None,
                                 gateway.require_ma if gateway else False)
    return fp.Probe(0, 0, "test", ("none",), source, port, 0, data, 1, tuple(silent))


def reply(request: bytes, code: int, pairs=(), secret=CISCO.secret) -> bytes:
    body = b"".join(wire.encode_pair(DICT.by_name[n], v, DICT) for n, v in pairs)
    head = wire.header(code, request[1], wire.HEADER + len(body), bytes(16))
    data = head + body
    return data[:4] + wire.response_authenticator(data, request[4:20], secret) + data[20:]


# --- the model of what FreeRADIUS drops --------------------------------------------------

def test_good_packets_may_be_answered():
    assert wire.silent_reasons(pyrad_access(), "auth", CISCO.secret) == []
    assert wire.silent_reasons(pyrad_access(ma=True), "auth", CISCO.secret) == []
    assert wire.silent_reasons(pyrad_accounting(), "acct", CISCO.secret) == []
    ma = pyrad_access(secret=MA_GATEWAY.secret, ma=True)
    assert wire.silent_reasons(ma, "auth", MA_GATEWAY.secret, require_ma=True) == []


@pytest.mark.parametrize("data, port, require_ma, reason", [
    (pyrad_accounting(secret=b"wrong"), "acct", False, "request-authenticator-wrong"),
    (pyrad_access(secret=b"wrong", ma=True), "auth", False, "message-authenticator-wrong"),
    (pyrad_access(), "auth", True, "message-authenticator-required"),
    (pyrad_access()[:-3], "auth", False, "truncated"),
    (pyrad_access()[:19], "auth", False, "short-datagram"),
    (pyrad_access(), "acct", False, "code-not-served-on-port"),
    (pyrad_accounting(), "auth", False, "code-not-served-on-port"),
    (pyrad_access()[:2] + b"\x00\x10" + pyrad_access()[4:], "auth", False, "length-below-20"),
    (pyrad_access()[:2] + b"\x10\x01" + pyrad_access()[4:] + bytes(5000), "auth", False,
     "length-over-4096"),
    (pyrad_access()[:21] + b"\x01" + pyrad_access()[22:], "auth", False, "attribute-too-short"),
    (pyrad_access()[:21] + b"\xf0" + pyrad_access()[22:], "auth", False, "attribute-overflow"),
    (pyrad_access()[:20] + b"\x00" + pyrad_access()[21:], "auth", False, "attribute-0"),
])
def test_broken_packets_must_get_no_answer(data, port, require_ma, reason):
    assert reason in wire.silent_reasons(data, port, CISCO.secret, require_ma)


def test_an_unknown_address_must_get_no_answer():
    assert wire.silent_reasons(pyrad_access(), "auth", None) == ["unknown-source"]


def test_the_fuzzers_packets_are_what_pyrad_makes():
    draft = fp.Draft(wire.ACCOUNTING_REQUEST, [["Acct-Status-Type", "Start"],
                                               ["Acct-Session-Id", "000B5571"]],
                     CISCO, "acct", CISCO.address, CISCO.secret, CISCO.secret)
    assert fp.encode(draft, DICT, 4, bytes(16)) == pyrad_accounting()
    authenticator = bytes(range(16))
    pkt = packet.AuthPacket(code=packet.AccessRequest, secret=CISCO.secret, dict=DICTIONARY,
                            id=9, authenticator=authenticator)
    pkt["User-Password"] = pkt.PwCrypt(PIN)
    draft = fp.Draft(wire.ACCESS_REQUEST, [["User-Password", PIN]], CISCO, "auth",
                     CISCO.address, CISCO.secret, CISCO.secret)
    assert fp.encode(draft, DICT, 9, authenticator) == pkt.RequestPacket()
    hidden = wire.hide_password(b"1234", b"s", authenticator)
    assert wire.unhide_password(hidden, b"s", authenticator) == b"1234"


def test_a_batch_is_the_same_bytes_for_the_same_seed():
    one = [p.data for p in fp.Generator(WORLD, DICT, 3).batch(2, 300)]
    assert one == [p.data for p in fp.Generator(WORLD, DICT, 3).batch(2, 300)]
    assert one != [p.data for p in fp.Generator(WORLD, DICT, 4).batch(2, 300)]
    assert one != [p.data for p in fp.Generator(WORLD, DICT, 3).batch(3, 300)]


# --- the judge ------------------------------------------------------------------------

CREDIT = [("h323-return-code", "h323-return-code=0"),
          ("h323-credit-amount", "h323-credit-amount=12.50")]


def test_a_valid_login_accepted_with_credit_is_no_finding():
    p = probe(pyrad_access())
    assert fuzz.judge(p, reply(p.data, wire.ACCESS_ACCEPT, CREDIT), WORLD, DICT) is None
    refused = [("h323-return-code", "h323-return-code=2"), ("Reply-Message", "wrong PIN")]
    assert fuzz.judge(p, reply(p.data, wire.ACCESS_REJECT, refused), WORLD, DICT) is None


@pytest.mark.parametrize("request_, answer, check", [
    (pyrad_access(pin="0000"), (wire.ACCESS_ACCEPT, CREDIT), "accept-not-legitimate"),
    (pyrad_access(user=sorted(WORLD.refused_cards)[0]), (wire.ACCESS_ACCEPT, CREDIT),
     "accept-not-legitimate"),
    (pyrad_access(), (wire.ACCESS_ACCEPT, [("h323-return-code", "h323-return-code=0"),
                                           ("h323-credit-amount", "h323-credit-amount=0.00")]),
     "accept-credit"),
    (pyrad_access(), (wire.ACCESS_REJECT, [("h323-credit-time", "h323-credit-time=60")]),
     "reject-with-credit"),
    (pyrad_access(), (wire.ACCOUNTING_RESPONSE, []), "answer-code"),
    (pyrad_access()[:-3], (wire.ACCESS_REJECT, []), "answered-although-truncated"),
])
def test_wrong_answers_are_findings(request_, answer, check):
    p = probe(request_)
    assert fuzz.judge(p, reply(p.data, *answer), WORLD, DICT)[0] == check


def test_a_reply_signed_with_another_secret_is_a_finding():
    p = probe(pyrad_access())
    forged = reply(p.data, wire.ACCESS_REJECT, secret=b"other")
    assert fuzz.judge(p, forged, WORLD, DICT)[0] == "reply-authenticator-wrong"


def test_a_bound_caller_may_log_in_without_a_pin_but_not_with_one():
    caller = sorted(WORLD.callers)[0]
    assert fuzz.legitimate_login(probe(pyrad_access(user=caller, pin="", caller=caller)),
                                 WORLD, DICT)
    assert not fuzz.legitimate_login(probe(pyrad_access(user=caller, pin="1", caller=caller)),
                                     WORLD, DICT)
    assert not fuzz.legitimate_login(probe(pyrad_access(user="15550000000", pin="",
                                                        caller="15550000000")), WORLD, DICT)


def test_only_a_record_without_a_known_status_may_be_parked():
    assert fuzz.without_a_status([("User-Name", "1000000008")])
    assert fuzz.without_a_status([("Acct-Status-Type", "1483887698"), ("Acct-Status-Type", "Start")])
    assert fuzz.without_a_status([("Acct-Status-Type", "\0Stop")])
    assert not fuzz.without_a_status([("Acct-Status-Type", "Stop"), ("Acct-Status-Type", "junk")])
    assert not fuzz.without_a_status([("Acct-Status-Type", " Interim-Update\0x")])
