"""Caller-ID logins, access-number policies, postpaid accounts and prompt
languages, end to end through the real FreeRADIUS."""

import pytest

from kondge_billing.store import callers
from kondge_billing.store.pins import load_key
from tests.e2e.test_radius import conf_id
from tests.support.cards import new_card


@pytest.fixture(scope="module")
def uk_gateway(stack_ready):
    """A Quintum gateway in the UK: national numbers with a trunk 0."""
    r = stack_ready.kondge("gateways", "add", "--name", "london-1", "--address", "127.0.0.30",
                           "--secret", "uk-secret", "--dialect", "quintum")
    assert r.returncode == 0, r.stderr
    r = stack_ready.kondge("gateways", "modify", "london-1", "--country-code", "44",
                           "--national-prefix", "0", "--international-prefix", "00",
                           "--language-map", "zh=ch")
    assert r.returncode == 0, r.stderr
    from tests.e2e.conftest import wait_until_served
    wait_until_served(stack_ready, "127.0.0.30", "uk-secret")
    client = stack_ready.client("uk-secret", source="127.0.0.30")
    yield client
    client.close()


def ani(client, caller, called="18005550100", conf=None):
    """A caller login: User-Name = Calling-Station-Id, no password."""
    return client.access([("User-Name", caller), ("Calling-Station-Id", caller),
                          ("Called-Station-Id", called),
                          ("Quintum-h323-conf-id", conf or conf_id())])


def key(service):
    return load_key(service.settings.pin_key_file)


def test_bound_caller_logs_in_without_pin_however_the_number_is_sent(stack_ready, uk_gateway):
    number = new_card(stack_ready.db, key(stack_ready), "10.00")
    stack_ready.db.run(lambda cur: callers.bind(cur, number, ["+447700900123"]))
    for written in ("07700900123", "+447700900123", "00447700900123"):
        reply = ani(uk_gateway, written)
        assert reply is not None and reply.accepted, written
        assert reply.h323("h323-credit-amount", "Quintum-") == "10.00"
    conf = conf_id()
    assert ani(uk_gateway, "07700900123", conf=conf).accepted
    grant = ani(uk_gateway, "07700900123", "442071234567", conf=conf)
    assert grant.accepted and grant.h323("h323-credit-time", "Quintum-") == "12000"


def test_unbound_caller_is_told_to_enter_a_card(stack_ready, uk_gateway):
    reply = ani(uk_gateway, "07700900999")
    assert not reply.accepted and reply.h323("h323-return-code", "Quintum-") == "1"


def test_access_number_login_policy(stack_ready, uk_gateway):
    number = new_card(stack_ready.db, key(stack_ready), "10.00")
    stack_ready.db.run(lambda cur: callers.bind(cur, number, ["447700900555"]))
    for n, login in (("8005550001", "card"), ("8005550002", "caller")):
        r = stack_ready.kondge("access-numbers", "add", n, "--login", login)
        assert r.returncode == 0, r.stderr
    # caller login on a card-only number: code 1, so the IVR asks for the card
    refused = ani(uk_gateway, "07700900555", "8005550001")
    assert refused.h323("h323-return-code", "Quintum-") == "1"
    assert ani(uk_gateway, "07700900555", "8005550002").accepted
    # an unbound caller on the caller-only number: refused
    assert ani(uk_gateway, "07700900556", "8005550002").h323(
        "h323-return-code", "Quintum-") == "1"
    # card login on a caller-only number: refused; on a card-only number: fine
    card_login = [("User-Name", number), ("User-Password", "1234"),
                  ("Calling-Station-Id", "07700900555")]
    refused = uk_gateway.access(card_login + [("Called-Station-Id", "8005550002")])
    assert refused.h323("h323-return-code", "Quintum-") == "7"
    assert "does not take this kind of login" in refused.get("Reply-Message")
    assert uk_gateway.access(card_login + [("Called-Station-Id", "8005550001")]).accepted


def test_caller_is_bound_by_itself_after_a_card_login(stack_ready, uk_gateway):
    stack_ready.db.run(lambda cur: cur.execute(
        """INSERT INTO kondge.category (name, auto_bind, max_callers)
           VALUES ('autobind', true, 1) ON CONFLICT DO NOTHING"""))
    number = new_card(stack_ready.db, key(stack_ready), "10.00", category="autobind")
    assert ani(uk_gateway, "07700900777").h323("h323-return-code", "Quintum-") == "1"
    login = uk_gateway.access([("User-Name", number), ("User-Password", "1234"),
                               ("Calling-Station-Id", "07700900777"),
                               ("Called-Station-Id", "18005550100")])
    assert login.accepted
    assert ani(uk_gateway, "+447700900777").accepted          # now bound
    uk_gateway.access([("User-Name", number), ("User-Password", "1234"),
                       ("Calling-Station-Id", "07700900778"),
                       ("Called-Station-Id", "18005550100")])
    # one caller at most for this category: the second number stays unbound
    assert ani(uk_gateway, "07700900778").h323("h323-return-code", "Quintum-") == "1"


def test_postpaid_account_announces_due_and_credit_and_stops_at_its_limit(stack_ready, cisco):
    stack_ready.db.run(lambda cur: cur.execute(
        """INSERT INTO kondge.category (name, billing, credit_limit, max_calls)
           VALUES ('office', 'postpaid', 2, 5) ON CONFLICT DO NOTHING"""))
    number = new_card(stack_ready.db, key(stack_ready), "0.00", category="office")
    login = cisco.access([("User-Name", number), ("User-Password", "1234"),
                          ("Called-Station-Id", "18005550100")])
    assert login.accepted and login.h323("h323-credit-amount") == "2.00"
    assert login.h323("h323-billing-model") == "0"             # credit (postpaid)
    assert login.get("Reply-Message") == "Amount due 0.00 USD, credit remaining 2.00 USD"
    # spend it all: a call the gateway lets run two minutes past its grant;
    # the charge stops at the credit limit
    conf = conf_id()
    grant = cisco.access([("User-Name", number), ("User-Password", "1234"),
                          ("Called-Station-Id", "447911123456"), ("h323-conf-id", conf)])
    seconds = int(grant.h323("h323-credit-time"))
    assert cisco.accounting([("Acct-Status-Type", "Stop"), ("User-Name", number),
                             ("Called-Station-Id", "447911123456"), ("h323-conf-id", conf),
                             ("h323-call-origin", "h323-call-origin=originate"),
                             ("Acct-Session-Time", seconds + 120)]) is not None
    login = cisco.access([("User-Name", number), ("User-Password", "1234"),
                          ("Called-Station-Id", "18005550100")])
    assert not login.accepted and login.h323("h323-return-code") == "6"


def test_language_per_card_access_number_and_gateway(stack_ready, uk_gateway, cisco):
    number = new_card(stack_ready.db, key(stack_ready), "10.00", language="fr")
    login = [("User-Name", number), ("User-Password", "1234")]
    assert cisco.access(login + [("Called-Station-Id", "18005550100")]).h323(
        "h323-preferred-lang") == "fr"                            # the card's
    r = stack_ready.kondge("access-numbers", "add", "8005550888", "--language", "zh",
                           "--prompt-id", "7")
    assert r.returncode == 0, r.stderr
    reply = cisco.access(login + [("Called-Station-Id", "8005550888")])
    assert reply.h323("h323-preferred-lang") == "zh"              # the access number's
    assert reply.h323("h323-prompt-id") == "7"
    reply = uk_gateway.access(login + [("Called-Station-Id", "8005550888")])
    assert reply.h323("h323-preferred-lang", "Quintum-") == "ch"  # as that IVR names it
