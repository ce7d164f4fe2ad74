"""The web portal's database functions (sql/functions/web_*.sql through
kondge_billing/store/portal.py), called as the portal's own role, kondge_web:
one card's data for its proof and nothing else, PIN failures counted on
the call path's counters, sessions that end, refills by the operators'
rules."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

import uuid

import psycopg2
import pytest

from kondge_billing.store import callers, pins, portal
from kondge_billing.calls import pin_guard
from kondge_billing.config import PinPolicy
from kondge_billing.store.db import Database
from tests.db.test_cards import call, issue, one, rows, shop, tx  # noqa: F401 (shop: fixture)
from kondge_billing.edge.request import access_request

CLIENT = "192.0.2.10"


@pytest.fixture
def web(shop, dsn):
    """A connection as the portal's role."""
    database = Database(dsn.replace("user=kondge", "user=kondge_web"))
    yield database
    database.close()


def card_of(shop, pin_key, category="usd-10"):
    return issue(shop, pin_key, category, 1, f"b-{uuid.uuid4().hex[:12]}")["pieces"][0]


def log_in(web, pin_key, number, pin, client=CLIENT):
    return web.run(lambda cur: portal.login(cur, pin_key, number, pin, client))


def test_login_gives_a_token_that_shows_its_card_only(shop, web, pin_key, billing):
    mine, other = card_of(shop, pin_key), card_of(shop, pin_key)
    call(billing, mine, 125, "AAAA0001 0F4411D6 AB5591F0 CBF3D765")        # 0.3150
    call(billing, other, 60, "AAAA0002 0F4411D6 AB5591F0 CBF3D765", "442071234567")
    token = log_in(web, pin_key, mine.number, mine.pin).token
    assert token and len(token) == 64
    card = web.run(lambda cur: portal.card(cur, token))
    assert card["number"] == mine.number and card["balance"] == Decimal("9.6850")
    assert card["available"] == Decimal("9.6850") and card["held"] == 0
    calls, total = web.run(lambda cur: portal.calls(cur, token))
    assert total == 1 and [c["destination"] for c in calls] == ["447911123456"]
    assert calls[0]["charge"] == Decimal("0.3150") and calls[0]["seconds"] == 125
    assert calls[0]["destination_name"]                  # the tariff's name for 4479
    moves, _ = web.run(lambda cur: portal.movements(cur, token))
    assert [m["kind"] for m in moves] == ["issue"]
    # the database keeps the token's hash, never the token
    stored = rows(shop, "SELECT token_hash FROM kondge.web_session")
    assert len(stored) == 1 and stored[0]["token_hash"] != token


def test_no_token_a_made_up_one_or_a_logged_out_one_shows_nothing(shop, web, pin_key):
    piece = card_of(shop, pin_key)
    token = log_in(web, pin_key, piece.number, piece.pin).token
    for bad in ("", "0" * 64, token[:-1] + ("0" if token[-1] != "0" else "1"), None):
        with pytest.raises(portal.NotLoggedIn):
            web.run(lambda cur: portal.card(cur, bad))
        with pytest.raises(portal.NotLoggedIn):
            web.run(lambda cur: portal.calls(cur, bad))
        assert web.run(lambda cur: (cur.execute(
            "SELECT kondge.web_statement(%s, now() - interval '1 day', now()) AS st",
            (bad,)), cur.fetchone())[1])["st"] is None
    assert web.run(lambda cur: portal.logout(cur, token)) is True
    with pytest.raises(portal.NotLoggedIn):
        web.run(lambda cur: portal.card(cur, token))
    assert web.run(lambda cur: portal.logout(cur, token)) is False


def test_a_session_ends_when_idle_and_after_its_life(shop, web, pin_key):
    piece = card_of(shop, pin_key)
    idle = log_in(web, pin_key, piece.number, piece.pin).token
    old = log_in(web, pin_key, piece.number, piece.pin).token
    shop.run(lambda cur: cur.execute(
        "UPDATE kondge.web_session SET expires_at = now() - interval '1 second' "
        "WHERE token_hash = encode(sha256(convert_to(%s, 'UTF8')), 'hex')", (idle,)))
    shop.run(lambda cur: cur.execute(
        "UPDATE kondge.web_session SET created_at = now() - interval '12 hours', "
        "last_seen = now() - interval '1 minute' "
        "WHERE token_hash = encode(sha256(convert_to(%s, 'UTF8')), 'hex')", (old,)))
    with pytest.raises(portal.NotLoggedIn):
        web.run(lambda cur: portal.card(cur, idle))
    web.run(lambda cur: portal.card(cur, old))       # this use moves its end to its life's end
    with pytest.raises(portal.NotLoggedIn):
        web.run(lambda cur: portal.card(cur, old))


def test_a_page_view_writes_nothing_unless_the_session_is_a_minute_old(shop, web, pin_key):
    piece = card_of(shop, pin_key)
    token = log_in(web, pin_key, piece.number, piece.pin).token

    def seen():
        return one(shop, "SELECT last_seen, expires_at FROM kondge.web_session")
    before = seen()
    web.run(lambda cur: portal.card(cur, token))
    assert seen() == before
    shop.run(lambda cur: cur.execute(
        "UPDATE kondge.web_session SET last_seen = now() - interval '61 seconds', "
        "expires_at = now() + interval '1 minute'"))
    web.run(lambda cur: portal.card(cur, token))
    after = seen()
    assert after["expires_at"] > datetime.now(timezone.utc) + timedelta(minutes=14)


def test_unknown_card_and_wrong_pin_get_the_same_answer(shop, web, pin_key):
    piece = card_of(shop, pin_key)
    wrong = log_in(web, pin_key, piece.number, "0000" if piece.pin != "0000" else "1111")
    unknown = log_in(web, pin_key, "4000000000006", "1234")
    assert wrong == unknown == portal.LoginResult(None, "wrong-pin", None)


def test_web_and_call_path_share_one_lockout(shop, web, pin_key, billing):
    """Three wrong PINs over RADIUS and two on the web lock the card (5, the
    default): the right PIN is then refused both ways, and the lock is the
    call path's own (kondge cards unlock lifts it)."""
    piece = card_of(shop, pin_key)
    bad = "0000" if piece.pin != "0000" else "1111"
    for _ in range(3):
        with pytest.raises(Exception):
            call(billing, SimpleNamespace(number=piece.number, pin=bad), 10,
                 "BBBB0001 0F4411D6 AB5591F0 CBF3D765")
    assert one(shop, "SELECT pin_failures FROM kondge.card WHERE number = %s",
               piece.number)["pin_failures"] == 3
    # the fourth and the fifth (which locks, answered as the call path answers it)
    for _ in range(2):
        assert log_in(web, pin_key, piece.number, bad).refusal == "wrong-pin"
    right = log_in(web, pin_key, piece.number, piece.pin)
    assert right.token is None and right.refusal == "card-locked"
    assert right.until > datetime.now(timezone.utc) + timedelta(minutes=14)
    with pytest.raises(Exception, match="too many wrong PINs|retries|locked"):
        call(billing, piece, 10, "BBBB0002 0F4411D6 AB5591F0 CBF3D765")
    tx(shop, lambda cur: pin_guard.unlock(cur, "card", piece.number, "alice"))
    assert log_in(web, pin_key, piece.number, piece.pin).token


def test_the_right_pin_forgives_wrong_ones_on_the_web_too(shop, web, pin_key):
    piece = card_of(shop, pin_key)
    bad = "0000" if piece.pin != "0000" else "1111"
    for _ in range(4):
        log_in(web, pin_key, piece.number, bad)
    assert log_in(web, pin_key, piece.number, piece.pin).token
    assert one(shop, "SELECT pin_failures FROM kondge.card WHERE number = %s",
               piece.number)["pin_failures"] == 0


def test_one_client_spraying_card_numbers_is_locked(shop, web, pin_key):
    shop.run(lambda cur: pin_guard.apply_policy(cur, PinPolicy(caller_tries=3)))
    piece = card_of(shop, pin_key)
    for number in ("4000000000006", "4000000000014", "4000000000022"):
        assert log_in(web, pin_key, number, "1234").refusal == "wrong-pin"
    # the next login from that address, even with a right PIN, is refused
    refused = log_in(web, pin_key, piece.number, piece.pin)
    assert refused.refusal == "client-locked" and refused.token is None
    # another address is not
    assert log_in(web, pin_key, piece.number, piece.pin, client="192.0.2.11").token
    audit = rows(shop, "SELECT selection FROM kondge.audit_log WHERE action = 'pin lock'")
    assert {"web": CLIENT} in [a["selection"] for a in audit]


def test_a_client_address_must_look_like_one(shop, web, pin_key):
    with pytest.raises(psycopg2.errors.InvalidParameterValue):
        log_in(web, pin_key, "1000000008", "1234", client="x' OR 1=1 --")


def test_refill_moves_a_voucher_once_with_its_wrong_pin_rules(shop, web, pin_key):
    piece = card_of(shop, pin_key)
    voucher = card_of(shop, pin_key, "refill-5")
    token = log_in(web, pin_key, piece.number, piece.pin).token
    bad = "0000" if voucher.pin != "0000" else "1111"
    out = web.run(lambda cur: portal.refill(cur, pin_key, token, CLIENT, voucher.number, bad))
    assert out["outcome"] == "wrong-pin"
    assert one(shop, "SELECT failed_attempts FROM kondge.voucher WHERE number = %s",
               voucher.number)["failed_attempts"] == 1
    out = web.run(lambda cur: portal.refill(cur, pin_key, token, CLIENT, voucher.number,
                                            voucher.pin))
    assert out["outcome"] == "refilled" and out["balance"] == Decimal("15.00")
    again = web.run(lambda cur: portal.refill(cur, pin_key, token, CLIENT, voucher.number,
                                              voucher.pin))
    assert again["outcome"] == "used"
    assert web.run(lambda cur: portal.card(cur, token))["balance"] == Decimal("15.00")
    record = rows(shop, "SELECT operator, db_user FROM kondge.audit_log WHERE action = 'refill'")
    assert record == [{"operator": "web portal", "db_user": "kondge_web"}]
    with pytest.raises(portal.NotLoggedIn):
        web.run(lambda cur: portal.refill(cur, pin_key, "0" * 64, CLIENT, voucher.number,
                                          voucher.pin))


def test_voucher_guesses_count_against_the_client(shop, web, pin_key):
    shop.run(lambda cur: pin_guard.apply_policy(cur, PinPolicy(caller_tries=2)))
    piece = card_of(shop, pin_key)
    voucher = card_of(shop, pin_key, "refill-5")
    token = log_in(web, pin_key, piece.number, piece.pin).token
    for number in ("5000000001", "5000000002"):
        out = web.run(lambda cur: portal.refill(cur, pin_key, token, CLIENT, number, "1234"))
        assert out["outcome"] == "no-voucher"
    out = web.run(lambda cur: portal.refill(cur, pin_key, token, CLIENT, voucher.number,
                                            voucher.pin))
    assert out["outcome"] == "client-locked" and out["refused_until"] is not None
    assert web.run(lambda cur: portal.card(cur, token))["balance"] == Decimal("10.00")


def test_language_and_statement(shop, web, pin_key, billing):
    piece = card_of(shop, pin_key)
    call(billing, piece, 125, "CCCC0101 0F4411D6 AB5591F0 CBF3D765")
    token = log_in(web, pin_key, piece.number, piece.pin).token
    web.run(lambda cur: portal.set_language(cur, token, "zh"))
    assert web.run(lambda cur: portal.card(cur, token))["language"] == "zh"
    with pytest.raises(psycopg2.errors.InvalidParameterValue):
        web.run(lambda cur: portal.set_language(cur, token, "<b>"))
    now = datetime.now(timezone.utc)
    st = web.run(lambda cur: portal.statement(cur, token, now - timedelta(days=1),
                                              now + timedelta(minutes=1)))
    assert st["card"]["number"] == piece.number and st["card"]["language"] == "zh"
    assert st["opening"] == 0 and st["charges"] == Decimal("0.3150")
    assert st["closing"] == Decimal("9.6850") and len(st["calls"]) == 1
    assert st["credits"] == Decimal("10.00")


def test_the_portal_role_reads_no_table(web):
    for table in ("card", "web_session", "ledger_entry", "cdr", "voucher"):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            web.run(lambda cur: cur.execute(f"SELECT * FROM kondge.{table} LIMIT 1"))
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        web.run(lambda cur: cur.execute("SELECT kondge.web_session_card('x')"))
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        web.run(lambda cur: cur.execute(
            "SELECT * FROM kondge.op_refill('x', '1000000008', '1', 'h')"))


def test_the_sweep_forgets_a_client_s_count_after_its_window(shop, web, pin_key):
    log_in(web, pin_key, "4000000000006", "1234")
    log_in(web, pin_key, "4000000000006", "1234", client="192.0.2.99")
    shop.run(lambda cur: cur.execute(
        "UPDATE kondge.pin_guard SET window_start = now() - interval '2 hours' "
        "WHERE scope = 'web' AND key = %s", (CLIENT,)))
    shop.run(pin_guard.forget)
    left = rows(shop, "SELECT key FROM kondge.pin_guard WHERE scope = 'web'")
    assert left == [{"key": "192.0.2.99"}]


# --- logging in with a caller number bound to the card ------------------------------

def bound_card(shop, pin_key, caller):
    piece = card_of(shop, pin_key)
    tx(shop, lambda cur: callers.bind(cur, piece.number, [caller]))
    return piece


def by_caller(web, pin_key, caller, pin, client=CLIENT):
    return web.run(lambda cur: portal.login_caller(cur, pin_key, caller, pin, client))


def wrong(pin):
    return "0000" if pin != "0000" else "1111"


@pytest.mark.parametrize("key", [b"ab" * 32, b"k" * 20, b"0123456789abcdef" * 5])
def test_the_database_makes_the_pin_hash_the_call_path_makes(shop, key):
    made = one(shop, "SELECT kondge.web_pin_hash(%s, '4000000000006', '0042') AS h",
               key.decode())["h"]
    assert made == pins.pin_hash(key, "4000000000006", "0042")
    assert made != pins.pin_hash(key, "4000000000006", "0043")


def test_a_bound_caller_number_and_the_pin_open_the_card(shop, web, pin_key):
    piece = bound_card(shop, pin_key, "447700900301")
    card_of(shop, pin_key)                                   # another card, not shown
    token = by_caller(web, pin_key, "447700900301", piece.pin).token
    assert token and len(token) == 64
    assert web.run(lambda cur: portal.card(cur, token))["number"] == piece.number


def test_a_caller_number_tells_nothing_without_the_right_pin(shop, web, pin_key):
    """A caller number bound to a card with a wrong PIN, and one bound to no
    card: the same answers, the same lock after the same tries, no session."""
    shop.run(lambda cur: pin_guard.apply_policy(cur, PinPolicy(card_tries=3, caller_tries=0)))
    piece = bound_card(shop, pin_key, "447700900302")
    answers = {}
    for caller in ("447700900302", "447700900399"):
        answers[caller] = [by_caller(web, pin_key, caller, wrong(piece.pin), client=f"192.0.2.{n}")
                           for n in range(20, 24)]
    bound, unbound = answers["447700900302"], answers["447700900399"]
    assert [a.refusal for a in bound] == [a.refusal for a in unbound] == \
        ["wrong-pin", "wrong-pin", "wrong-pin", "card-locked"]
    assert all(a.token is None for a in bound + unbound)
    assert bound[0].until is None and unbound[0].until is None
    assert abs(bound[3].until - unbound[3].until) < timedelta(seconds=30)
    assert rows(shop, "SELECT 1 FROM kondge.web_session") == []
    # the lock holds against the right PIN too, and the card's number is the one locked
    assert by_caller(web, pin_key, "447700900302", piece.pin).refusal == "card-locked"
    assert log_in(web, pin_key, piece.number, piece.pin).refusal == "card-locked"


def test_wrong_pins_by_caller_number_count_on_the_card_and_the_caller(shop, web, pin_key,
                                                                      billing):
    """The call path's counters: the card's wrong PINs in a row (shared with
    card-number logins) and the caller number's (shared with the gateways')."""
    shop.run(lambda cur: pin_guard.apply_policy(cur, PinPolicy(card_tries=5, caller_tries=3)))
    caller = "447700900303"
    piece = bound_card(shop, pin_key, caller)
    bad = wrong(piece.pin)
    # a gateway's wrong PIN for the card, from that caller number
    with pytest.raises(Exception):
        billing.authorize(billing.gateways.get("127.0.0.1"), access_request((
            ("User-Name", piece.number), ("User-Password", bad),
            ("Calling-Station-Id", caller), ("Called-Station-Id", "447911123456"),
            ("h323-conf-id", "h323-conf-id=DDDD0001 0F4411D6 AB5591F0 CBF3D765"),
            ("Kondge-Gateway-Address", "127.0.0.1"))))
    assert by_caller(web, pin_key, caller, bad).refusal == "wrong-pin"
    for _ in range(2):
        assert log_in(web, pin_key, piece.number, bad, client="192.0.2.30").refusal == "wrong-pin"

    def counts():
        return (one(shop, "SELECT pin_failures FROM kondge.card WHERE number = %s",
                    piece.number)["pin_failures"],
                one(shop, "SELECT failures FROM kondge.pin_guard WHERE scope = 'caller' "
                    "AND key = %s", caller)["failures"])
    assert counts() == (4, 2)
    # the fifth locks the card and the third the caller number (answered as wrong)
    assert by_caller(web, pin_key, caller, bad, client="192.0.2.31").refusal == "wrong-pin"
    right = by_caller(web, pin_key, caller, piece.pin, client="192.0.2.32")
    assert right.refusal == "caller-locked" and right.token is None
    assert right.until > datetime.now(timezone.utc) + timedelta(minutes=50)
    assert log_in(web, pin_key, piece.number, piece.pin,
                  client="192.0.2.32").refusal == "card-locked"
    audit = [a["selection"] for a in rows(
        shop, "SELECT selection FROM kondge.audit_log WHERE action = 'pin lock'")]
    assert {"caller": caller} in audit and {"card": piece.number} in audit
    assert rows(shop, "SELECT 1 FROM kondge.web_session") == []


def test_the_right_pin_by_caller_number_forgives_the_card_s_wrong_ones(shop, web, pin_key):
    piece = bound_card(shop, pin_key, "447700900304")
    for _ in range(3):
        log_in(web, pin_key, piece.number, wrong(piece.pin))
    assert by_caller(web, pin_key, "447700900304", piece.pin).token
    assert one(shop, "SELECT pin_failures FROM kondge.card WHERE number = %s",
               piece.number)["pin_failures"] == 0


def test_a_caller_login_must_be_a_number(web, pin_key):
    for bad in ("", "12", "+447700900305", "4477009003x5", "1" * 21):
        with pytest.raises(ValueError):
            by_caller(web, pin_key, bad, "1234")
    with pytest.raises(psycopg2.errors.InvalidParameterValue):
        web.run(lambda cur: cur.execute(
            "SELECT * FROM kondge.web_login_caller('12ab', '1234', 'k', %s)", (CLIENT,)))


def test_the_portal_role_cannot_make_hashes_or_skip_the_pin(web):
    for sql in ("SELECT kondge.web_pin_hash('k', '4000000000006', '1234')",
                "SELECT * FROM kondge.web_login_proven(1, '4000000000006', NULL, true, 'x')",
                "SELECT * FROM kondge.caller LIMIT 1"):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            web.run(lambda cur: cur.execute(sql))


def test_no_statement_of_the_portal_s_role_is_ever_logged(dsn):
    """A phone-number login hands the PIN key to the database: the role's own
    settings keep its statements out of the server's log."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT unnest(setconfig) FROM pg_db_role_setting s "
                        "JOIN pg_roles r ON r.oid = s.setrole "
                        "WHERE r.rolname = 'kondge_web' AND s.setdatabase = 0")
            settings = {row[0] for row in cur.fetchall()}
    finally:
        conn.close()
    assert {"log_min_error_statement=panic", "log_min_duration_statement=-1",
            "log_statement=none"} <= settings
