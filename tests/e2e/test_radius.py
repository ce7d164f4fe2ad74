"""End to end: the real FreeRADIUS with the real module, driven over
loopback by a real RADIUS client, against the real PostgreSQL."""

import json
import os
import time
from decimal import Decimal

import psycopg2

import pytest

from kondge_billing.operations.stack import pg_running, stop_postgres
from tests.e2e.conftest import balance, wait_until_served
from tests.support.waiting import poll

CREDIT = ("h323-credit-amount", "h323-credit-time", "Quintum-h323-credit-amount",
          "Quintum-h323-credit-time", "Session-Timeout")


def conf_id():
    words = os.urandom(16).hex().upper()
    return "h323-conf-id=" + " ".join(words[i:i + 8] for i in range(0, 32, 8))


def access(client, number, pin, called="18005550100", conf=None, **kw):
    return client.access([("User-Name", number), ("User-Password", pin),
                          ("Calling-Station-Id", "15551234567"),
                          ("Called-Station-Id", called),
                          ("h323-conf-id", conf or conf_id())], **kw)


@pytest.mark.parametrize("number, pin, called, code", [
    ("1999999996", "1234", "18005550100", 2),    # unknown card: as a wrong PIN
    ("1000000008", "9999", "18005550100", 2),    # wrong PIN
    ("1000000024", "3456", "18005550100", 4),    # zero balance
    ("2000000006", "1111", "18005550100", 5),    # expired
    ("1000000032", "4567", "18005550100", 7),    # suspended
    ("1000000008", "1234", "33123456", 9),       # no rate for the destination
    ("1000000008", "1234", "dial-me", 11),       # destination is not a number
    ("2000000014", "2222", "447911123456", 12),  # below the first block's cost
    ("10000x0001", "1234", "18005550100", 14),   # malformed card number
    ("1000000001", "1234", "18005550100", 14),   # a mistyped digit: the Luhn check fails
])
def test_refusals_carry_the_return_code_and_no_credit(cisco, number, pin, called, code):
    reply = access(cisco, number, pin, called)
    assert reply is not None and not reply.accepted
    assert reply.h323("h323-return-code") == str(code)
    assert not any(name in reply.pairs for name in CREDIT)
    assert reply.get("Reply-Message")


def test_cisco_login_and_destination(cisco, card):
    conf = conf_id()
    login = access(cisco, card, "1234", conf=conf)
    assert login.accepted
    assert login.h323("h323-return-code") == "0"
    assert login.h323("h323-credit-amount") == "10.00"
    assert login.h323("h323-currency") == "USD"
    assert login.h323("h323-preferred-lang") == "en"
    assert login.h323("h323-billing-model") == "1"
    grant = access(cisco, card, "1234", "447911123456", conf=conf)
    assert grant.accepted and grant.h323("h323-credit-time") == "3996"


def test_language_follows_the_card(cisco):
    assert access(cisco, "1000000016", "2345").h323("h323-preferred-lang") == "es"


def test_quintum_dialect(stack_ready, card):
    client = stack_ready.client("q-secret", source="127.0.0.2")
    login = access(client, card, "1234")
    assert login.accepted
    assert login.h323("h323-credit-amount", "Quintum-") == "10.00"
    assert login.h323("h323-currency", "Quintum-") == "USD"
    assert "h323-credit-amount" not in login.pairs
    grant = access(client, card, "1234", "15551230000")
    assert grant.h323("h323-credit-time", "Quintum-") == "30000"     # 10.00 at 0.02/min
    refused = access(client, card, "0000")
    assert refused.h323("h323-return-code", "Quintum-") == "2"
    client.close()


def test_generic_dialect(stack_ready, card):
    client = stack_ready.client("l-secret", source="127.0.0.3")
    login = access(client, card, "1234")
    assert login.accepted and login.get("Reply-Message") == "Balance 10.00 USD"
    grant = access(client, card, "1234", "442071234567")
    assert grant.accepted and grant.get("Session-Timeout") == 12000   # 10.00 at 0.05/min
    refused = access(client, card, "0000")
    assert not refused.accepted and "Session-Timeout" not in refused.pairs
    assert refused.get("Reply-Message") == "wrong PIN"
    client.close()


def leg(client, status, origin, conf, seconds=None, delay=0, number="1000000040",
        dest="447911123456"):
    pairs = [("Acct-Status-Type", status), ("Acct-Session-Id", "000B5571"),
             ("User-Name", number), ("Calling-Station-Id", "15551234567"),
             ("Called-Station-Id", dest if origin == "originate" else "18005550100"),
             ("h323-conf-id", conf), ("h323-call-origin", f"h323-call-origin={origin}"),
             ("h323-call-type", "h323-call-type=" + ("VoIP" if origin == "originate"
                                                      else "Telephony")),
             ("h323-setup-time", "h323-setup-time=14:30:25.429 GMT Wed Jan 23 2002"),
             ("Acct-Delay-Time", delay)]
    if seconds is not None:
        pairs += [("Acct-Session-Time", seconds),
                  ("h323-disconnect-cause", "h323-disconnect-cause=10")]
    return client.accounting(pairs)


def test_call_is_charged_once_and_retransmissions_change_nothing(stack_ready, cisco):
    assert stack_ready.kondge("cards", "add", "--number", "1000000040", "--pin", "5555",
                              "--balance", "3.00", "--currency", "USD").returncode == 0
    conf = conf_id()
    for _ in range(3):                                   # balance queries: free
        assert access(cisco, "1000000040", "5555", conf=conf).accepted
    assert access(cisco, "1000000040", "5555", "447911123456", conf=conf).accepted
    assert leg(cisco, "Start", "answer", conf) is not None
    assert leg(cisco, "Start", "originate", conf) is not None
    assert leg(cisco, "Stop", "originate", conf, seconds=125) is not None
    # the gateway did not hear us: the same Stop again, new id, larger delay
    assert leg(cisco, "Stop", "originate", conf, seconds=125, delay=4) is not None
    assert leg(cisco, "Stop", "answer", conf, seconds=160) is not None
    assert leg(cisco, "Stop", "answer", conf, seconds=160, delay=3) is not None
    assert balance(stack_ready, "1000000040") == Decimal("2.6850")     # 126 s at 0.15
    listed = stack_ready.kondge("--json", "cdrs", "list", "--card", "1000000040")
    cdrs = json.loads(listed.stdout)
    assert len(cdrs) == 1 and cdrs[0]["charge"] == "0.3150" and cdrs[0]["duration"] == 125


def test_packets_from_an_unknown_address_are_dropped(stack_ready):
    client = stack_ready.client("testing123", source="127.0.0.99", timeout=1.0)
    assert access(client, "1000000008", "1234") is None
    assert client.accounting([("Acct-Status-Type", "Start"), ("Acct-Session-Id", "x")]) is None
    client.close()


def test_wrong_secret_is_dropped(stack_ready):
    client = stack_ready.client("not-the-secret", timeout=1.0)
    # Accounting-Request authenticators are keyed by the secret: dropped.
    assert client.accounting([("Acct-Status-Type", "Start"), ("Acct-Session-Id", "x")]) is None
    # An Access-Request with a Message-Authenticator made with a wrong secret: dropped.
    assert access(client, "1000000008", "1234", message_authenticator=True) is None
    client.close()


def test_message_authenticator_required_per_gateway(stack_ready):
    client = stack_ready.client("ma-secret", source="127.0.0.4", timeout=1.0)
    assert access(client, "1000000008", "1234") is None
    assert access(client, "1000000008", "1234", message_authenticator=True).accepted
    client.close()


def test_gateway_added_and_removed_without_a_restart_by_hand(stack_ready):
    assert stack_ready.kondge("gateways", "add", "--name", "late-1", "--address", "127.0.0.5",
                              "--secret", "late", "--dialect", "cisco").returncode == 0
    wait_until_served(stack_ready, "127.0.0.5", "late")
    assert stack_ready.kondge("gateways", "remove", "late-1").returncode == 0
    wait_until_served(stack_ready, "127.0.0.5", "late", served=False)
    # the other gateways are still served after the restart that applied it
    wait_until_served(stack_ready, "127.0.0.1", "testing123")


def test_a_secret_freeradius_would_expand_is_served_as_given(stack_ready):
    """${...} and $ENV{...} in a secret: served as typed when the gateway is
    added to the running server and after a change restarts the front end."""
    secret = "a${b}'c$ENV{HOME}$"
    assert stack_ready.kondge("gateways", "add", "--name", "dollar-1", "--address", "127.0.0.6",
                              "--secret", secret, "--dialect", "cisco").returncode == 0
    wait_until_served(stack_ready, "127.0.0.6", secret)
    assert stack_ready.kondge("gateways", "modify", "dollar-1", "--message-authenticator",
                              "required").returncode == 0
    wait_until_served(stack_ready, "127.0.0.6", secret, served=False)
    wait_until_served(stack_ready, "127.0.0.6", secret, message_authenticator=True)
    assert stack_ready.kondge("gateways", "remove", "dollar-1").returncode == 0
    wait_until_served(stack_ready, "127.0.0.6", secret, message_authenticator=True,
                      served=False)


def test_database_restart_is_survived(stack_ready, cisco):
    """Each worker's old connection fails once after a restart: reconnect, answer."""
    s = stack_ready.settings
    assert access(cisco, "1000000008", "1234").accepted         # connections are open
    stop_postgres(s)                   # the supervisor notices and starts it again
    deadline = time.monotonic() + 60
    poll(lambda: pg_running(s), 60, step=0.1)
    poll(lambda: psycopg2.connect(s.dsn).close() is None, deadline - time.monotonic(), step=0.1,
         ignore=psycopg2.OperationalError)
    replies = [access(cisco, "1000000008", "1234") for _ in range(10)]
    assert all(r is not None and r.accepted for r in replies)
