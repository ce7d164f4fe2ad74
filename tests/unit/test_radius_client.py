"""The test client's own check of a reply's Message-Authenticator
(tests/support/radius.py, RFC 3579 3.2): it must say "valid" only for the
right HMAC-MD5 and catch any change, else the end-to-end tests of the
server's replies would prove nothing. pyrad builds the replies here and is
the independent second opinion."""

import pytest
from pyrad import packet

from tests.support.radius import DICTIONARY, attribute_spans, message_authenticator_state

SECRET = b"s3cret"


def exchange(code=packet.AccessAccept, with_ma=True):
    """(reply bytes, the request's authenticator) of a request/reply pair."""
    request = packet.AuthPacket(code=packet.AccessRequest, secret=SECRET, dict=DICTIONARY, id=9)
    request.AddAttribute("User-Name", "1000000008")
    raw = request.RequestPacket()
    reply = request.CreateReply()
    reply.code = code
    if with_ma:
        reply.add_message_authenticator()
    reply.AddAttribute("Reply-Message", "Balance 10.00 USD")
    return reply.ReplyPacket(), raw[4:20]


@pytest.mark.parametrize("code", [packet.AccessAccept, packet.AccessReject])
def test_the_right_hmac_is_valid_and_pyrad_agrees(code):
    data, authenticator = exchange(code)
    assert message_authenticator_state(data, authenticator, SECRET) == "valid"
    parsed = packet.Packet(secret=SECRET, dict=DICTIONARY, packet=data)
    assert parsed.verify_message_authenticator(original_authenticator=authenticator)


def test_a_reply_without_one_is_absent():
    data, authenticator = exchange(with_ma=False)
    assert message_authenticator_state(data, authenticator, SECRET) == "absent"


@pytest.mark.parametrize("offset", [0, 1, 22, 37, 40, -1])
def test_any_byte_changed_makes_it_invalid(offset):
    """The code, the id, the HMAC itself (bytes 22-37) and the attribute
    after it (from byte 38) are all covered."""
    data, authenticator = exchange()
    assert [kind for _at, kind, _v in attribute_spans(data)] == [80, 18]
    changed = bytearray(data)
    changed[offset] ^= 0x01
    assert message_authenticator_state(bytes(changed), authenticator, SECRET) == "invalid"


def test_another_secret_or_request_makes_it_invalid():
    data, authenticator = exchange()
    assert message_authenticator_state(data, authenticator, b"other") == "invalid"
    assert message_authenticator_state(data, bytes(16), SECRET) == "invalid"


def test_a_malformed_attribute_is_an_error():
    data, _ = exchange()
    broken = data[:21] + b"\x00" + data[22:]          # an attribute of length 0
    with pytest.raises(AssertionError):
        attribute_spans(broken)
