"""The edge of the service, through the real FreeRADIUS processes:

- only the front end reaches a worker: a local process that sends to a
  worker's loopback ports, naming a gateway, is neither answered nor served
  (no balance read, no hold placed, no record stored);
- every Access-Accept and Access-Reject carries a Message-Authenticator,
  first, that the gateway's secret proves (checked by the test client's
  own HMAC, tests/support/radius.py), and a gateway set to `required` is
  not served without one;
- odd packets: a non-UTF-8 byte in an Access-Request is refused in the
  gateway's dialect with the invalid-argument code; accounting with no or
  an unknown Acct-Status-Type is kept for the operator (kondge accounting
  parked, counted by kondge accounting check) and answered only then.
"""

import json
import time

import pytest

from kondge_billing.store import callers
from kondge_billing.operations import radius_config, stack
from kondge_billing.store.pins import load_key
from tests.e2e.conftest import radius_beside
from tests.e2e.test_billing_rules import MOBILE
from tests.e2e.test_outages import (database_answers, database_down,  # noqa: F401
                                    log_offsets, logs_since, wait_until)
from tests.e2e.test_radius import CREDIT, access, conf_id
from tests.support.cards import new_card
from tests.support.radius import MESSAGE_AUTHENTICATOR, RadiusClient, TcpRadiusClient

# (secret, source address, dialect prefix, Message-Authenticator required) of
# each gateway stack_ready has
GATEWAYS = {
    "cisco": ("testing123", "127.0.0.1", False),
    "quintum": ("q-secret", "127.0.0.2", False),
    "generic": ("l-secret", "127.0.0.3", False),
    "cisco-required": ("ma-secret", "127.0.0.4", True),
}
BAD_BYTES = b"\xff\xfe15551234567"             # no UTF-8


def gateway_client(service, which, timeout=2.0):
    secret, source, _required = GATEWAYS[which]
    return service.client(secret, source=source, timeout=timeout)


def worker_ports(settings) -> list[int]:
    return [int((d / "port").read_text()) for d in stack.worker_dirs(settings)
            if (d / "port").exists()]


def reservations(service, number) -> int:
    return service.db.run(lambda cur: (cur.execute(
        """SELECT count(*) AS n FROM kondge.reservation r JOIN kondge.card c ON c.id = r.card_id
            WHERE c.number = %s""", (number,)), cur.fetchone())[1])["n"]


def legs(service, session) -> int:
    return service.db.run(lambda cur: (cur.execute(
        "SELECT count(*) AS n FROM kondge.call_leg WHERE acct_session_id = %s", (session,)),
        cur.fetchone())[1])["n"]


def parked_with(service, session) -> list[dict]:
    rows = service.db.run(lambda cur: (cur.execute(
        """SELECT id, pairs, error FROM kondge.unprocessed_record
            WHERE pairs @> %s::jsonb ORDER BY id""",
        (json.dumps([["Acct-Session-Id", session]]),)), cur.fetchall())[1])
    return rows


@pytest.fixture
def bound_caller(stack_ready):
    """A card with 10.00 reached by a caller-ID login from 15550001234."""
    number = new_card(stack_ready.db, load_key(stack_ready.settings.pin_key_file), "10.00")
    stack_ready.db.run(lambda cur: callers.bind(cur, number, ["15550001234"]))
    return number


def caller_login(client, called="18005550100", conf=None, message_authenticator=False,
                 extra=()):
    return client.access([("User-Name", "15550001234"), ("Calling-Station-Id", "15550001234"),
                          ("Called-Station-Id", called), ("h323-conf-id", conf or conf_id()),
                          *extra], message_authenticator=message_authenticator)


# --- only the front end reaches a worker ------------------------------------

def test_a_local_process_cannot_pose_as_the_front_end_on_a_worker(stack_ready, bound_caller):
    """Through the front end the caller-ID login reads the balance and stage 2
    places a hold; sent straight to every worker's auth port, naming the
    gateway (even the one that requires a Message-Authenticator), with or
    without a Message-Authenticator made with a guessed secret, nothing is
    answered and nothing is held."""
    s = stack_ready.settings
    ports = worker_ports(s)
    assert len(ports) == s.workers >= 2
    offsets = log_offsets(s)
    named = [("Kondge-Gateway-Address", "127.0.0.4"), ("Kondge-Gateway-Name", "cisco-ma"),
             ("Kondge-Gateway-Dialect", "cisco")]
    # a worker's new logins (UDP) and the stage 2 of its admitted calls (TCP)
    auth_ports = [radius_config.worker_ports(port) for port in ports]
    intruders = [RadiusClient(p["logins"], p["acct"], "testing123", timeout=0.5)
                 for p in auth_ports]
    intruders += [TcpRadiusClient(p["calls"], p["acct"], "testing123", timeout=0.5)
                  for p in auth_ports]
    for intruder in intruders:
        try:
            for guess in (False, True):
                assert caller_login(intruder, message_authenticator=guess,
                                    extra=named) is None
                assert caller_login(intruder, MOBILE, message_authenticator=guess,
                                    extra=named) is None
        finally:
            intruder.close()
    assert reservations(stack_ready, bound_caller) == 0
    # the refusals with a Message-Authenticator made with a wrong secret are logged
    log = logs_since(s, offsets)
    assert log.count("invalid Message-Authenticator") >= len(auth_ports), log[-2000:]
    # the same requests from the gateway, through the front end, are served
    gateway = gateway_client(stack_ready, "cisco-required")
    try:
        login = caller_login(gateway, message_authenticator=True)
        assert login.accepted and login.h323("h323-credit-amount") == "10.00"
        assert caller_login(gateway, MOBILE, message_authenticator=True).accepted
    finally:
        gateway.close()
    assert reservations(stack_ready, bound_caller) == 1


def test_a_local_process_cannot_store_accounting_through_a_worker(stack_ready):
    """An Accounting-Request needs the link's secret for its authenticator:
    one made with a guessed secret is dropped by every worker and logged."""
    s = stack_ready.settings
    offsets = log_offsets(s)
    session = "FORGED" + str(time.monotonic_ns())[-8:]
    acct_ports = [radius_config.worker_ports(port)["acct"] for port in worker_ports(s)]
    for intruder in ([RadiusClient(acct - 2, acct, "testing123", timeout=0.5)
                      for acct in acct_ports]
                     + [TcpRadiusClient(acct - 2, acct, "testing123", timeout=0.5)
                        for acct in acct_ports]):
        try:
            assert intruder.accounting([
                ("Acct-Status-Type", "Stop"), ("Acct-Session-Id", session),
                ("User-Name", "1000000008"), ("Called-Station-Id", MOBILE),
                ("Acct-Session-Time", 600), ("Kondge-Gateway-Address", "127.0.0.1"),
                ("h323-call-origin", "h323-call-origin=originate")]) is None
        finally:
            intruder.close()
    assert legs(stack_ready, session) == 0 and parked_with(stack_ready, session) == []
    assert logs_since(s, offsets).count("invalid Request Authenticator") >= len(worker_ports(s))


def test_the_kondge_attributes_a_gateway_sends_are_not_trusted(stack_ready, cisco):
    """A Cisco gateway that names another gateway, another dialect and asks
    for no answer is answered, as itself, in its own dialect."""
    reply = cisco.access([("User-Name", "1000000008"), ("User-Password", "1234"),
                          ("Called-Station-Id", "18005550100"),
                          ("Kondge-Gateway-Address", "127.0.0.3"),
                          ("Kondge-Gateway-Name", "lucent-1"),
                          ("Kondge-Gateway-Dialect", "generic"), ("Kondge-No-Answer", 1)])
    assert reply is not None and reply.accepted
    assert reply.h323("h323-credit-amount") == "10.00" and "Reply-Message" not in reply.pairs
    unreadable = cisco.access([("User-Name", "1000000008"), ("User-Password", "1234"),
                               ("Calling-Station-Id", BAD_BYTES),
                               ("Kondge-Gateway-Dialect", "generic")])
    assert unreadable.h323("h323-return-code") == "11"


# --- Message-Authenticator in every answer -----------------------------------

def assert_signed(reply):
    assert reply is not None
    assert reply.message_authenticator == "valid", reply
    assert reply.attribute_types[0] == MESSAGE_AUTHENTICATOR
    assert reply.attribute_types.count(MESSAGE_AUTHENTICATOR) == 1


@pytest.mark.parametrize("which", list(GATEWAYS))
def test_every_accept_and_reject_carries_a_message_authenticator_first(stack_ready, card,
                                                                       which):
    _secret, _source, required = GATEWAYS[which]
    client = gateway_client(stack_ready, which)
    try:
        accept = access(client, "1000000008", "1234", message_authenticator=required)
        assert accept.accepted
        assert_signed(accept)
        reject = access(client, "1000000008", "9999", message_authenticator=required)
        assert reject.code == 3
        assert_signed(reject)
        assert not any(name in reject.pairs for name in CREDIT)
        granted = access(client, card, "1234", MOBILE, message_authenticator=required)
        assert granted.accepted
        assert_signed(granted)
    finally:
        client.close()


def test_a_gateway_set_to_required_is_served_only_with_a_message_authenticator(stack_ready):
    client = gateway_client(stack_ready, "cisco-required", timeout=0.5)
    try:
        for _ in range(3):
            assert access(client, "1000000008", "1234") is None
            assert access(client, "1000000008", "9999") is None
        assert_signed(access(client, "1000000008", "1234", message_authenticator=True))
    finally:
        client.close()


def test_an_accounting_response_carries_none(stack_ready, cisco):
    """RFC 3579 defines it for Access-* replies only."""
    reply = cisco.accounting([("Acct-Status-Type", "Accounting-On"), ("Acct-Session-Id", "0")])
    assert reply is not None and reply.attribute_types == ()


# --- odd packets ---------------------------------------------------------------

def refusal_pairs(reply) -> dict:
    return {k: v for k, v in reply.pairs.items() if k != "Message-Authenticator"}


@pytest.mark.parametrize("which", ["cisco", "quintum", "generic", "cisco-required"])
def test_bytes_that_are_not_utf8_get_the_invalid_argument_refusal_in_each_dialect(
        stack_ready, which):
    """rlm_python3 cannot hand such a request to the hook; the server refuses
    it as the hook refuses an invalid argument (here a destination that is no
    number): the same pairs, in the gateway's dialect, signed, no credit."""
    required = GATEWAYS[which][2]
    client = gateway_client(stack_ready, which)
    try:
        for name, value in (("Calling-Station-Id", BAD_BYTES), ("User-Name", b"\xc3\x28"),
                            ("Called-Station-Id", b"1800\xe9")):
            pairs = [("User-Name", "1000000008"), ("User-Password", "1234"),
                     ("Calling-Station-Id", "15551234567"), ("Called-Station-Id", MOBILE)]
            pairs = [(n, value if n == name else v) for n, v in pairs]
            reply = client.access(pairs, message_authenticator=required)
            assert reply is not None and reply.code == 3, (name, reply)
            assert_signed(reply)
            hook_refusal = access(client, "1000000008", "1234", "dial-me",
                                  message_authenticator=required)
            assert refusal_pairs(reply) == refusal_pairs(hook_refusal), name
            assert reply.get("Reply-Message") == "invalid argument"
            if which != "generic":
                prefix = "Quintum-" if which == "quintum" else ""
                assert reply.h323("h323-return-code", prefix) == "11"
    finally:
        client.close()


def test_accounting_with_no_or_an_unknown_status_is_kept_counted_and_answered(stack_ready):
    """Answered once kept in kondge.unprocessed_record, listed by `kondge
    accounting parked`, counted as set aside by `kondge accounting check`,
    and never stored as a call."""
    check_before = json.loads(stack_ready.kondge("--json", "accounting", "check").stdout)
    stamp = str(time.monotonic_ns())[-9:]
    sessions = {"none": "NOSTATUS" + stamp, "99": "STATUS99" + stamp,
                "tunnel": "TUNNEL" + stamp}
    client = gateway_client(stack_ready, "quintum")
    try:
        sent = {"none": [], "99": [("Acct-Status-Type", 99)],
                "tunnel": [("Acct-Status-Type", 9)]}
        for kind, status in sent.items():
            reply = client.accounting(status + [
                ("Acct-Session-Id", sessions[kind]), ("User-Name", "1000000008"),
                ("Called-Station-Id", MOBILE), ("Acct-Session-Time", 60)])
            assert reply is not None and reply.code == 5, kind
    finally:
        client.close()
    for kind, session in sessions.items():
        [row] = parked_with(stack_ready, session)
        assert legs(stack_ready, session) == 0
        assert "quintum-1" in row["error"]
        assert ("no Acct-Status-Type" in row["error"]) == (kind == "none")
    listed = json.loads(stack_ready.kondge("--json", "accounting", "parked").stdout)
    ids = {r["id"] for r in listed}
    assert all(parked_with(stack_ready, s)[0]["id"] in ids for s in sessions.values())
    result = stack_ready.kondge("--json", "accounting", "check")
    after = json.loads(result.stdout)
    assert after["parked"] - check_before["parked"] == 3, (check_before, after)
    assert not any(session in json.dumps(m) for m in after["missing"]
                   for session in sessions.values())
    assert result.returncode == (0 if not after["missing"] else 1)
    # replaying one stores nothing and it stays counted as set aside
    one = parked_with(stack_ready, sessions["99"])[0]["id"]
    replay = stack_ready.kondge("--json", "accounting", "replay", "--id", str(one))
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert legs(stack_ready, sessions["99"]) == 0
    again = json.loads(stack_ready.kondge("--json", "accounting", "check").stdout)
    assert again["parked"] == after["parked"]
    assert not any(sessions["99"] in json.dumps(m) for m in again["missing"])


def test_with_the_database_down_such_a_record_is_spooled_then_kept(stack_ready,
                                                                    database_down):
    """Answered once the spool has it; parked by the supervisor's replay once
    the database is back."""
    session = "NOSTATUSDOWN" + str(time.monotonic_ns())[-8:]
    client = gateway_client(stack_ready, "cisco", timeout=3.0)
    try:
        reply = client.accounting([("Acct-Session-Id", session), ("User-Name", "1000000008")])
        assert reply is not None and reply.code == 5
    finally:
        client.close()
    spooled = json.loads(stack_ready.kondge("--json", "accounting", "spool").stdout)
    assert spooled["spooled"] >= 1
    stack.db_start(stack_ready.settings)
    assert wait_until(lambda: database_answers(stack_ready.settings))
    assert wait_until(lambda: len(parked_with(stack_ready, session)) == 1, timeout=60)
    assert legs(stack_ready, session) == 0


# --- one process serving the gateways itself ------------------------------------

def test_a_single_process_signs_its_answers_and_refuses_bad_bytes_in_dialect(
        stack_ready, service_var):
    """KONDGE_WORKERS=1: the same edge without a front end."""
    with radius_beside(stack_ready, service_var, KONDGE_WORKERS="1") as (s, _):
        for which in ("cisco", "quintum", "generic", "cisco-required"):
            secret, source, required = GATEWAYS[which]
            client = RadiusClient(s.auth_port, s.acct_port, secret, source=source)
            try:
                assert_signed(access(client, "1000000008", "1234",
                                     message_authenticator=required))
                refused = client.access([("User-Name", "1000000008"),
                                         ("User-Password", "1234"),
                                         ("Calling-Station-Id", BAD_BYTES)],
                                        message_authenticator=required)
                assert refused.code == 3
                assert_signed(refused)
                hook_refusal = access(client, "1000000008", "1234", "dial-me",
                                      message_authenticator=required)
                assert refusal_pairs(refused) == refusal_pairs(hook_refusal), which
                if required:
                    client.sock.settimeout(0.5)
                    assert access(client, "1000000008", "1234") is None
                answered = client.accounting([("Acct-Status-Type", "Accounting-On"),
                                              ("Acct-Session-Id", "0")])
                assert answered is not None and answered.attribute_types == ()
            finally:
                client.close()
