"""Limits on PIN guessing, against a real PostgreSQL (a fresh database per test).

Wrong PINs are counted per card number, caller number and gateway
(sql/functions/pin_failed.sql); a locked key is refused with code 10
(RetriesExceeded) without a look at the PIN; the right PIN forgives a
card's wrong ones; the counters are rows, exact under concurrent failures.
"""

from datetime import datetime
from decimal import Decimal

import pytest

from kondge_billing.store import cards, gateways
from kondge_billing.operations import demo
from kondge_billing.calls import pin_guard
from kondge_billing.config import PinPolicy
from kondge_billing.store.db import Database
from kondge_billing.errors import RetriesExceeded, UnknownCard, WrongPin
from kondge_billing.store.gateways import GatewayDirectory, all_gateways
from kondge_billing.store.pins import pin_hash
from kondge_billing.edge.request import access_request
from kondge_billing.calls.service import Billing, Grant, Login
from tests.support.cards import luhn_number, new_card
from tests.support.concurrency import at_once
from tests.support.waiting import wait_for

PIN = "1234"


@pytest.fixture
def world(db, pin_key):
    def setup(cur):
        demo.load(cur, pin_key)
        gateways.add(cur, "quintum-1", "127.0.0.2", "q-secret", "quintum")
    db.run(setup)
    return db


def policy(db, **limits):
    db.run(lambda cur: pin_guard.apply_policy(cur, PinPolicy(**limits)))


def login(number, pin, caller="15551234567", gw="127.0.0.1", called="18005550100", conf=None):
    pairs = [("User-Name", number), ("User-Password", pin), ("Called-Station-Id", called),
             ("Kondge-Gateway-Address", gw)]
    if caller is not None:
        pairs.append(("Calling-Station-Id", caller))
    if conf is not None:
        pairs.append(("h323-conf-id", conf))
    return access_request(tuple(pairs))


def auth(billing, req):
    return billing.authorize(billing.gateways.get(req.gateway_address), req)


def code(billing, req):
    """The h323 return code the request gets (0: accepted)."""
    try:
        auth(billing, req)
    except (RetriesExceeded, WrongPin, UnknownCard) as refusal:
        return refusal.code
    return 0


def guards(db):
    """The counters of caller numbers, gateways and numbers that are no card."""
    return {(r["scope"], r["key"]): r for r in db.run(lambda cur: (cur.execute(
        "SELECT *, locked_until > now() AS locked FROM kondge.pin_guard"), cur.fetchall())[1])}


def card_pin(db, number):
    """A card's own count, on its row."""
    return db.run(lambda cur: (cur.execute(
        """SELECT pin_failures AS failures, pin_locks AS locks, pin_locked_until,
                  coalesce(pin_locked_until > now(), false) AS locked
             FROM kondge.card WHERE number = %s""", (number,)), cur.fetchone())[1])


def audit_rows(db, action):
    return db.run(lambda cur: (cur.execute(
        "SELECT * FROM kondge.audit_log WHERE action = %s ORDER BY id", (action,)),
        cur.fetchall())[1])


def expire_locks(db):
    """The cool-downs pass (without waiting for them)."""
    db.run(lambda cur: cur.execute(
        "UPDATE kondge.pin_guard SET locked_until = now() - interval '1 s' "
        "WHERE locked_until > now()"))
    db.run(lambda cur: cur.execute(
        "UPDATE kondge.card SET pin_locked_until = now() - interval '1 s' "
        "WHERE pin_locked_until > now()"))


# --- per card ---------------------------------------------------------------------------

def test_past_the_limit_even_the_right_pin_gets_code_10_until_unlocked(world, billing, pin_key):
    number = new_card(world, pin_key)
    assert [code(billing, login(number, "0000")) for _ in range(5)] == [2] * 5
    with pytest.raises(RetriesExceeded, match=f"card number {number} is locked until"):
        auth(billing, login(number, PIN))
    assert code(billing, login(number, "0000")) == 10          # not even compared
    [lock] = audit_rows(world, "pin lock")
    assert lock["selection"] == {"card": number} and lock["operator"] == "call path"
    assert lock["details"]["wrong_pins"] == 5 and lock["details"]["gateway"] == "demo-gw"
    shown = world.run(lambda cur: pin_guard.card_state(cur, number))
    assert shown["pin_locked"] != "no" and shown["pin_locks_in_a_row"] == 1

    done = world.run(lambda cur: pin_guard.unlock(cur, "card", number, "olga"))
    assert done["was_locked"] and done["locked_until"]
    assert isinstance(auth(billing, login(number, PIN)), Login)
    [unlock] = audit_rows(world, "pin unlock")
    assert unlock["operator"] == "olga" and unlock["selection"] == {"card": number}
    assert world.run(lambda cur: pin_guard.card_state(cur, number)) == {
        "pin_locked": "no", "wrong_pins_in_a_row": 0, "pin_locks_in_a_row": 0}


def test_the_right_pin_forgives_the_wrong_ones_before_it(world, billing, pin_key):
    policy(world, caller_tries=0, gateway_tries=0)     # the card's count alone
    number = new_card(world, pin_key)
    for _ in range(3):
        assert [code(billing, login(number, "0000")) for _ in range(4)] == [2] * 4
        assert code(billing, login(number, PIN)) == 0
    assert (card_pin(world, number)["failures"], guards(world)) == (0, {})
    assert audit_rows(world, "pin lock") == []


def test_each_lock_in_a_row_lasts_twice_as_long_and_the_cool_down_ends_it(world, billing,
                                                                          pin_key):
    policy(world, card_tries=2, card_cooldown=60)
    number = new_card(world, pin_key)
    for _ in range(3):
        assert [code(billing, login(number, "0000")) for _ in range(2)] == [2, 2]
        assert code(billing, login(number, PIN)) == 10
        expire_locks(world)
    lengths = [(datetime.fromisoformat(a["details"]["until"]) - a["at"]).total_seconds()
               for a in audit_rows(world, "pin lock")]
    assert lengths == [60, 120, 240]
    assert [a["details"]["lock_in_a_row"] for a in audit_rows(world, "pin lock")] == [1, 2, 3]
    assert code(billing, login(number, PIN)) == 0              # the cool-down is over
    assert (card_pin(world, number)["failures"], card_pin(world, number)["locks"]) == (0, 0)


def test_a_card_cool_down_of_0_locks_until_an_operator_unlocks(world, billing, pin_key):
    policy(world, card_tries=1, card_cooldown=0)
    number = new_card(world, pin_key)
    assert code(billing, login(number, "0000")) == 2
    with pytest.raises(RetriesExceeded, match="until 'kondge cards unlock'"):
        auth(billing, login(number, PIN))
    assert world.run(lambda cur: pin_guard.card_state(cur, number))["pin_locked"] == \
        "until kondge cards unlock"


def test_a_number_that_is_no_card_locks_like_a_card(world, billing):
    """A lock tells nobody whether the number is a card."""
    nobody = luhn_number()
    assert [code(billing, login(nobody, PIN)) for _ in range(5)] == [2] * 5
    assert code(billing, login(nobody, PIN)) == 10
    assert guards(world)[("card", nobody)]["locked"]


def test_a_locked_card_still_logs_in_by_its_bound_caller_number(world, billing, pin_key):
    number = new_card(world, pin_key)
    world.run(lambda cur: cur.execute(
        "INSERT INTO kondge.caller (number, card_id) SELECT '15557770000', id "
        "FROM kondge.card WHERE number = %s", (number,)))
    for _ in range(5):
        code(billing, login(number, "0000", caller="15550000001"))
    assert code(billing, login(number, PIN, caller="15557770000")) == 10
    ani = auth(billing, login("15557770000", "", caller="15557770000"))
    assert isinstance(ani, Login) and ani.balance == Decimal("10.00")


# --- per caller and per gateway -----------------------------------------------------------

def test_one_caller_number_is_limited_across_cards(world, billing, pin_key):
    policy(world, caller_tries=3)
    numbers = [new_card(world, pin_key) for _ in range(4)]
    assert [code(billing, login(n, "0000", caller="15550001111")) for n in numbers[:3]] == \
        [2, 2, 2]
    with pytest.raises(RetriesExceeded, match="caller 15550001111 is locked"):
        auth(billing, login(numbers[3], PIN, caller="15550001111"))
    # another caller on the same gateway, the same card: not locked
    assert code(billing, login(numbers[3], PIN, caller="15550002222")) == 0
    row = guards(world)[("caller", "15550001111")]
    assert row["locked"] and (row["locked_until"] - row["window_start"]).total_seconds() > 3599


def test_unknown_card_numbers_count_against_the_caller_and_the_gateway(world, billing,
                                                                        pin_key):
    policy(world, caller_tries=3, gateway_tries=5)
    for _ in range(3):
        assert code(billing, login(luhn_number(), PIN, caller="15550003333")) == 2
    assert guards(world)[("caller", "15550003333")]["locked"]
    assert guards(world)[("gateway", "1")]["failures"] == 3
    assert code(billing, login(new_card(world, pin_key), PIN, caller="15550003333")) == 10


def test_one_gateway_is_limited_across_callers_and_cards(world, billing, pin_key):
    policy(world, gateway_tries=4)
    for i in range(4):
        assert code(billing, login(luhn_number(), PIN, caller=f"1555000100{i}")) == 2
    number = new_card(world, pin_key)
    with pytest.raises(RetriesExceeded, match="gateway demo-gw is locked"):
        auth(billing, login(number, PIN, caller="15550009999"))
    # the same card through another gateway
    assert isinstance(auth(billing, login(number, PIN, gw="127.0.0.2")), Login)
    [lock] = audit_rows(world, "pin lock")
    assert lock["selection"] == {"gateway": "demo-gw"}


def test_a_request_without_a_caller_number_counts_against_the_gateway_only(world, billing):
    code(billing, login(luhn_number(), PIN, caller=None))
    assert {scope for scope, _ in guards(world)} == {"card", "gateway"}


def test_a_caller_window_that_passed_counts_afresh(world, billing):
    policy(world, caller_tries=3, caller_window=60)
    for _ in range(2):
        code(billing, login(luhn_number(), PIN, caller="15550004444"))
    world.run(lambda cur: cur.execute(
        "UPDATE kondge.pin_guard SET window_start = now() - interval '61 s' "
        "WHERE scope = 'caller'"))
    code(billing, login(luhn_number(), PIN, caller="15550004444"))
    row = guards(world)[("caller", "15550004444")]
    assert row["failures"] == 1 and not row["locked"]


def test_no_limit_with_0_tries(world, billing, pin_key):
    policy(world, card_tries=0, caller_tries=0, gateway_tries=0)
    number = new_card(world, pin_key)
    assert {code(billing, login(number, "0000")) for _ in range(12)} == {2}
    assert code(billing, login(number, PIN)) == 0
    assert guards(world) == {} and card_pin(world, number)["failures"] == 0


# --- the success path ---------------------------------------------------------------------

def test_success_writes_no_counter(world, billing, pin_key):
    number = new_card(world, pin_key)
    for i in range(5):
        conf = f"h323-conf-id=0000000{i} 0F4411D6 AB5591F0 CBF3D765"
        assert isinstance(auth(billing, login(number, PIN, conf=conf)), Login)
    assert isinstance(auth(billing, login(number, PIN, called="447911123456", conf=conf)),
                      Grant)
    assert guards(world) == {}
    assert (card_pin(world, number)["failures"], card_pin(world, number)["locks"]) == (0, 0)


def _success_path_touches(dsn, pin_key, number, caller):
    """What stage 1 with the right PIN reads and writes of the counters, in
    this transaction's own statistics (pg_stat_xact_user_tables)."""
    import psycopg2
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            for i in range(3):
                cur.execute("SELECT refusal FROM kondge.radius_card(%s, %s, %s, '18005550100', "
                            "%s, 1, %s, %s, NULL, now())",
                            (number, pin_hash(pin_key, number, PIN), caller, caller, f"c{i}",
                             f"c{i}"))
                assert cur.fetchone()[0] is None
            cur.execute("""SELECT relname, seq_scan + coalesce(idx_scan, 0) AS scans,
                                  n_tup_ins + n_tup_upd + n_tup_del AS writes
                             FROM pg_stat_xact_user_tables
                            WHERE relname IN ('pin_guard', 'card')""")
            return {r[0]: (r[1], r[2]) for r in cur.fetchall()}
    finally:
        conn.rollback()
        conn.close()


def test_the_success_path_looks_for_caller_and_gateway_locks_only_while_one_may_hold(
        world, dsn, pin_key, billing):
    number = new_card(world, pin_key)
    touched = _success_path_touches(dsn, pin_key, number, "15550007777")
    assert touched["pin_guard"] == (0, 0) and touched["card"][1] == 0
    policy(world, caller_tries=1)
    code(billing, login(luhn_number(), PIN, caller="15550008888"))     # locks that caller
    touched = _success_path_touches(dsn, pin_key, number, "15550007777")
    assert touched["pin_guard"][0] > 0 and touched["pin_guard"][1] == 0


def test_the_code_for_a_number_that_is_no_card_is_a_setting(world, pin_key, db):
    distinct = Billing(db, pin_key, GatewayDirectory(lambda: db.run(all_gateways)),
                       unknown_card_code=1)
    with pytest.raises(UnknownCard):
        auth(distinct, login(luhn_number(), PIN))
    merged = Billing(db, pin_key, GatewayDirectory(lambda: db.run(all_gateways)))
    with pytest.raises(WrongPin) as refused:
        auth(merged, login(luhn_number(), PIN))
    assert (refused.value.code, refused.value.message) == (2, "wrong PIN")


def test_a_locked_card_s_live_call_is_settled_as_usual(world, billing, pin_key):
    from kondge_billing.edge.request import accounting_record
    from datetime import datetime, timezone
    number = new_card(world, pin_key)
    conf = "h323-conf-id=1111AAAA 0F4411D6 AB5591F0 CBF3D765"
    assert auth(billing, login(number, PIN, called="447911123456", conf=conf)).seconds == 3996

    def acct(status, seconds=None):
        pairs = [("Acct-Status-Type", status), ("Acct-Session-Id", "55"), ("User-Name", number),
                 ("Called-Station-Id", "447911123456"), ("h323-conf-id", conf),
                 ("h323-call-origin", "h323-call-origin=originate"),
                 ("Kondge-Gateway-Address", "127.0.0.1")]
        if seconds is not None:
            pairs.append(("Acct-Session-Time", str(seconds)))
        rec = accounting_record(tuple(pairs), datetime.now(timezone.utc))
        return billing.account(billing.gateways.get(rec.gateway_address), rec)

    assert acct("Start").outcome == "recorded"
    for _ in range(5):
        code(billing, login(number, "0000", caller="15550005555"))
    assert code(billing, login(number, PIN)) == 10
    assert acct("Stop", 125).charge == Decimal("0.3150")
    assert world.run(lambda cur: cards.show(cur, number))["balance"] == Decimal("9.6850")


# --- the sweep ---------------------------------------------------------------------------

def test_the_sweep_forgets_what_no_longer_counts(world, billing, pin_key):
    policy(world, caller_window=60, gateway_window=60)
    number, nobody = new_card(world, pin_key), luhn_number()
    code(billing, login(number, "0000", caller="15550006666"))
    code(billing, login(nobody, PIN, caller="15550006666"))
    billing.sweep(600)
    assert set(guards(world)) == {("card", nobody), ("caller", "15550006666"),
                                  ("gateway", "1")}     # all still count
    world.run(lambda cur: cur.execute(
        "UPDATE kondge.pin_guard SET window_start = now() - interval '31 days', "
        "last_failure = now() - interval '31 days'"))
    billing.sweep(600)
    assert guards(world) == {}
    assert card_pin(world, number)["failures"] == 1     # a card's wrong PINs stay


# --- at once ------------------------------------------------------------------------------

def _storm(dsn, pin_key, number, senders, tries_each, pin="0000"):
    """`senders` threads, each with its own connection, sending wrong PINs at once."""
    answers, errors = [], []

    def sender(i, go):
        db = Database(dsn)
        billing = Billing(db, pin_key, GatewayDirectory(lambda: db.run(all_gateways)))
        try:
            go()
            for _ in range(tries_each):
                answers.append(code(billing, login(number, pin, caller=f"1555100{i:04d}")))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            db.close()

    at_once(senders, sender)
    assert not errors
    return answers


def test_wrong_pins_sent_at_once_are_each_counted(world, dsn, pin_key):
    policy(world, card_tries=100000, caller_tries=100000, gateway_tries=100000)
    number = new_card(world, pin_key)
    answers = _storm(dsn, pin_key, number, senders=16, tries_each=25)
    assert answers == [2] * 400
    rows = guards(world)
    assert card_pin(world, number)["failures"] == 400
    assert rows[("gateway", "1")]["failures"] == 400
    assert sum(r["failures"] for (scope, _), r in rows.items() if scope == "caller") == 400


def test_at_once_a_lock_lets_exactly_its_limit_of_guesses_through(world, dsn, pin_key,
                                                                  billing):
    """16 senders at once: requests that passed the look at the locks while
    the fifth failure was being counted find the lock when they come to be
    counted, and are answered code 10, not 2."""
    number = new_card(world, pin_key)
    answers = _storm(dsn, pin_key, number, senders=16, tries_each=5)
    row = card_pin(world, number)
    assert answers.count(2) == 5 and answers.count(10) == 75
    assert (row["locks"], row["failures"]) == (1, 0)
    assert guards(world)[("gateway", "1")]["failures"] == 5
    assert row["locked"] and code(billing, login(number, PIN)) == 10


@pytest.mark.parametrize("pin", ["0000", PIN], ids=["wrong", "right"])
def test_a_request_that_passed_the_look_at_the_locks_finds_a_lock_committed_meanwhile(
        world, dsn, pin_key, pin):
    """The fifth wrong PIN is counted in a transaction still open; a request
    that looked at the locks before it commits (and saw none) waits for that
    row, then finds the lock: answered code 10, whatever its PIN, uncounted."""
    import threading
    import psycopg2
    number = new_card(world, pin_key)
    policy(world, caller_tries=0, gateway_tries=0)
    billing = Billing(world, pin_key, GatewayDirectory(lambda: world.run(all_gateways)))
    for _ in range(4):
        assert code(billing, login(number, "0000")) == 2
    locker = psycopg2.connect(dsn)
    with locker.cursor() as cur:                 # the fifth, not yet committed
        cur.execute("SELECT refusal FROM kondge.radius_card(%s, 'x', NULL, '18005550100', "
                    "NULL, 1, 'c5', 'c5', NULL, now())", (number,))
        assert cur.fetchone()[0] == "wrong-pin"
    answers = []
    other = Database(dsn)
    late = threading.Thread(target=lambda: answers.append(
        code(Billing(other, pin_key, GatewayDirectory(lambda: other.run(all_gateways))),
             login(number, pin))))
    late.start()
    try:
        wait_for("the late request waiting for the lock", lambda: world.run(lambda cur: (
            cur.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = "
                        "'Lock' AND datname = current_database()"), cur.fetchone())[1])["n"],
            30, step=0.05)
    finally:
        locker.commit()
        late.join(30)
        locker.close()
        other.close()
    assert answers == [10]
    row = card_pin(world, number)
    assert (row["locks"], row["failures"]) == (1, 0) and row["locked"]
