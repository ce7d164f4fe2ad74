"""PIN guessing through the real server: wrong PINs lock a card number, a
caller number or a gateway (code 10) until the cool-down or an operator's
unlock; the counters are the database's, so a restart keeps them; a locked
card's live calls go on; unknown card numbers are answered as wrong PINs
unless KONDGE_UNKNOWN_CARD_CODE=1."""

import json
import time
from decimal import Decimal

import pytest

from kondge_billing.calls import pin_guard
from kondge_billing.config import PinPolicy
from tests.e2e.conftest import balance, radius_beside, wait_until_served
from tests.e2e.test_radius import CREDIT, conf_id, leg
from tests.support.cards import luhn_number
from tests.support.radius import RadiusClient

PIN = "1234"
LOCKED = "too many wrong PINs, try again later"
# a gateway of its own, so that locking it locks no other test out
PIN_GW, PIN_GW_SECRET = "127.0.0.9", "pin-secret"


@pytest.fixture
def limits(stack_ready):
    """Set the limits in the database as a start would; the service's own after."""
    def set_limits(**given):
        stack_ready.db.run(lambda cur: pin_guard.apply_policy(cur, PinPolicy(**given)))
    yield set_limits
    set_limits(**stack_ready.settings.pin_policy.__dict__)


@pytest.fixture(scope="module")
def pin_gw(stack_ready):
    result = stack_ready.kondge("gateways", "add", "--name", "pin-gw", "--address", PIN_GW,
                                "--secret", PIN_GW_SECRET, "--dialect", "cisco")
    assert result.returncode == 0, result.stderr
    wait_until_served(stack_ready, PIN_GW, PIN_GW_SECRET)
    client = stack_ready.client(PIN_GW_SECRET, source=PIN_GW)
    yield client
    client.close()


def login(client, number, pin, caller, called="18005550100", conf=None):
    return client.access([("User-Name", number), ("User-Password", pin),
                          ("Calling-Station-Id", caller), ("Called-Station-Id", called),
                          ("h323-conf-id", conf or conf_id())])


def code(reply, prefix=""):
    assert reply is not None, "no answer"
    if prefix is None:                      # generic: no return code, the message says it
        return reply.get("Reply-Message")
    return reply.h323("h323-return-code", prefix)


def card_shown(service, number):
    shown = service.kondge("--json", "cards", "show", number)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


DIALECTS = [("cisco", "127.0.0.1", "testing123", ""),
            ("quintum", "127.0.0.2", "q-secret", "Quintum-"),
            ("generic", "127.0.0.3", "l-secret", None)]


@pytest.mark.parametrize("dialect, source, secret, prefix", DIALECTS, ids=[d[0] for d in DIALECTS])
def test_wrong_pins_up_to_the_limit_then_the_right_pin_gets_code_10_until_unlocked(
        stack_ready, card, dialect, source, secret, prefix):
    caller = {"cisco": "15552000101", "quintum": "15552000102", "generic": "15552000103"}[dialect]
    client = stack_ready.client(secret, source=source)
    try:
        answers = [code(login(client, card, "0000", caller), prefix) for _ in range(5)]
        assert answers == (["2"] * 5 if prefix is not None else ["wrong PIN"] * 5)
        refused = login(client, card, PIN, caller)
        assert not refused.accepted and not any(name in refused.pairs for name in CREDIT)
        assert refused.get("Reply-Message") == LOCKED
        if prefix is not None:
            assert code(refused, prefix) == "10"
        shown = card_shown(stack_ready, card)
        assert shown["pin_locked"] != "no" and shown["pin_locks_in_a_row"] == 1

        unlocked = stack_ready.kondge("cards", "unlock", card, "--operator", "olga")
        assert unlocked.returncode == 0, unlocked.stderr
        assert f"card {card} unlocked" in unlocked.stdout
        assert login(client, card, PIN, caller).accepted
        assert card_shown(stack_ready, card)["pin_locked"] == "no"
    finally:
        client.close()
    audit = json.loads(stack_ready.kondge("--json", "audit", "list", "--limit", "20").stdout)
    mine = [(a["action"], a["operator"]) for a in audit
            if card in json.dumps(a["selection"]) and a["action"].startswith("pin")]
    assert mine == [("pin unlock", "olga"), ("pin lock", "call path")]


def test_the_right_pin_is_accepted_again_after_the_cool_down(stack_ready, cisco, card, limits):
    limits(card_tries=2, card_cooldown=5)
    assert [code(login(cisco, card, "0000", "15552000002")) for _ in range(2)] == ["2", "2"]
    assert code(login(cisco, card, PIN, "15552000002")) == "10"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        reply = login(cisco, card, PIN, "15552000002")
        if reply.accepted:
            break
        assert code(reply) == "10"
        time.sleep(0.25)
    assert reply.accepted and reply.h323("h323-credit-amount") == "10.00"
    # the lock lasted its cool-down: the database's own record of it
    row = stack_ready.db.run(lambda cur: (cur.execute(
        "SELECT action, details FROM kondge.audit_log WHERE action = 'pin lock' "
        "AND selection->>'card' = %s", (card,)), cur.fetchall())[1])
    assert len(row) == 1 and row[0]["details"]["wrong_pins"] == 2


def test_one_caller_number_is_limited_across_cards(stack_ready, cisco, limits):
    from tests.support.cards import new_card
    from kondge_billing.store.pins import load_key
    limits(caller_tries=3)
    key = load_key(stack_ready.settings.pin_key_file)
    numbers = [new_card(stack_ready.db, key) for _ in range(4)]
    assert [code(login(cisco, n, "0000", "15552000003")) for n in numbers[:3]] == ["2"] * 3
    assert code(login(cisco, numbers[3], PIN, "15552000003")) == "10"
    assert login(cisco, numbers[3], PIN, "15552000004").accepted      # another caller
    unlocked = stack_ready.kondge("cards", "unlock", "--caller", "+1 555 200 0003")
    assert unlocked.returncode == 0 and "unlocked" in unlocked.stdout, unlocked.stderr
    assert login(cisco, numbers[3], PIN, "15552000003").accepted


def test_one_gateway_is_limited_across_callers_and_cards(stack_ready, cisco, card, pin_gw,
                                                         limits):
    limits(gateway_tries=3)
    for i in range(3):                                     # numbers that are no card, too
        assert code(login(pin_gw, luhn_number(), PIN, f"1555300000{i}")) == "2"
    assert code(login(pin_gw, card, PIN, "15553000009")) == "10"
    assert login(cisco, card, PIN, "15553000009").accepted   # through another gateway
    unlocked = stack_ready.kondge("cards", "unlock", "--gateway", "pin-gw")
    assert unlocked.returncode == 0 and "unlocked" in unlocked.stdout, unlocked.stderr
    assert login(pin_gw, card, PIN, "15553000009").accepted
    missing = stack_ready.kondge("cards", "unlock", "--gateway", "no-such-gw")
    assert missing.returncode == 1 and "no gateway no-such-gw" in missing.stderr


def test_a_locked_card_s_live_call_is_billed_as_usual(stack_ready, cisco, card):
    conf = conf_id()
    assert login(cisco, card, PIN, "15552000005", conf=conf).accepted
    grant = login(cisco, card, PIN, "15552000005", called="447911123456", conf=conf)
    assert grant.h323("h323-credit-time") == "3996"
    assert leg(cisco, "Start", "answer", conf, number=card) is not None
    assert leg(cisco, "Start", "originate", conf, number=card) is not None
    for _ in range(5):                                     # someone else guesses meanwhile
        login(cisco, card, "0000", "15552000006")
    assert code(login(cisco, card, PIN, "15552000005")) == "10"
    assert leg(cisco, "Stop", "originate", conf, seconds=125, number=card) is not None
    assert leg(cisco, "Stop", "answer", conf, seconds=160, number=card) is not None
    assert balance(stack_ready, card) == Decimal("9.6850")              # 126 s at 0.15
    cdrs = json.loads(stack_ready.kondge("--json", "cdrs", "list", "--card", card).stdout)
    assert [c["charge"] for c in cdrs] == ["0.3150"]
    assert card_shown(stack_ready, card)["pin_locked"] != "no"


def test_an_unknown_card_number_is_answered_as_a_wrong_pin(stack_ready, cisco, card):
    unknown = login(cisco, luhn_number(), PIN, "15552000007")
    wrong = login(cisco, card, "0000", "15552000007")
    def said(answer):          # what a gateway hears (each answer's signature is its own)
        return answer.code, {k: v for k, v in answer.pairs.items()
                             if k != "Message-Authenticator"}
    assert said(unknown) == said(wrong)
    assert code(unknown) == "2" and unknown.get("Reply-Message") == "wrong PIN"


def test_with_unknown_card_code_1_an_unknown_number_gets_code_1(stack_ready, service_var):
    """KONDGE_UNKNOWN_CARD_CODE is the hook's: a server started with it, on the
    same database, answers code 1 (and a wrong PIN still 2)."""
    with radius_beside(stack_ready, service_var, KONDGE_WORKERS="1",
                       KONDGE_UNKNOWN_CARD_CODE="1") as (s, _):
        client = RadiusClient(s.auth_port, s.acct_port, "testing123", timeout=5.0)
        try:
            assert code(login(client, luhn_number(), PIN, "15552000008")) == "1"
            assert login(client, luhn_number(), PIN, "15552000008").get("Reply-Message") == \
                "unknown card"
            assert code(login(client, "1000000008", "0000", "15552000008")) == "2"
        finally:
            client.close()


def test_the_counters_survive_a_restart_of_the_service(stack_ready, cisco, card):
    for _ in range(5):
        assert code(login(cisco, card, "0000", "15552000010")) == "2"
    assert code(login(cisco, card, PIN, "15552000010")) == "10"
    stopped = stack_ready.kondge("server", "stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    started = stack_ready.kondge("server", "start")
    assert started.returncode == 0, started.stdout + started.stderr
    wait_until_served(stack_ready, "127.0.0.1", "testing123")
    assert code(login(cisco, card, PIN, "15552000010")) == "10"
    assert card_shown(stack_ready, card)["pin_locked"] != "no"
