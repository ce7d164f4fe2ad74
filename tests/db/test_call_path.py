"""The call path against a real PostgreSQL (a fresh database per test)."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import psycopg2
import pytest

from kondge_billing.store import cards, gateways
from kondge_billing.operations import demo
from kondge_billing.errors import (CardExpired, CardSuspended, DestinationBlocked,
                                   InsufficientBalance, InvalidArgument, WrongPin,
                                   ZeroBalance, Unavailable)
from kondge_billing.store.db import Database
from kondge_billing.edge.request import access_request, accounting_record
from kondge_billing.calls.service import Grant, Login
from tests.support.hook import load_hook

NOW = datetime.now(timezone.utc)
CONF = "h323-conf-id=AAAA0001 0F4411D6 AB5591F0 CBF3D765"


@pytest.fixture
def world(db, pin_key):
    def setup(cur):
        demo.load(cur, pin_key)
        cards.add(cur, pin_key, "2000000006", "1111", "1.00", "USD",
                  expires_at=NOW - timedelta(days=1))
        cards.add(cur, pin_key, "2000000014", "2222", "0.10", "USD")
        gateways.add(cur, "quintum-1", "127.0.0.2", "q-secret", "quintum")
        gateways.add(cur, "lucent-1", "127.0.0.3", "l-secret", "generic")
    db.run(setup)
    return db


def login(number, pin, called="18005550100", gw="127.0.0.1", conf=CONF, **extra):
    pairs = [("User-Name", number), ("User-Password", pin), ("Calling-Station-Id", "15551234567"),
             ("Called-Station-Id", called), ("h323-conf-id", conf),
             ("Kondge-Gateway-Address", gw)]
    pairs += list(extra.items())
    return access_request(tuple(pairs))


def auth(billing, req):
    return billing.authorize(billing.gateways.get(req.gateway_address), req)


def balance(db, number):
    return db.run(lambda cur: cards.show(cur, number))["balance"]


def test_stage_one_announces_the_balance(world, billing):
    outcome = auth(billing, login("1000000008", "1234"))
    assert outcome == Login(Decimal("10.00"), "USD", "en")


@pytest.mark.parametrize("number, pin, called, error", [
    ("1999999996", "1234", "18005550100", WrongPin),      # no card: as a wrong PIN
    ("1000000008", "1235", "18005550100", WrongPin),
    ("1000000008", "12x4", "18005550100", WrongPin),
    ("1000000024", "3456", "18005550100", ZeroBalance),
    ("1000000032", "4567", "18005550100", CardSuspended),
    ("2000000006", "1111", "18005550100", CardExpired),
    ("1000000008", "1234", "33123456", DestinationBlocked),
    ("2000000014", "2222", "447911123456", InsufficientBalance),
    ("1000000008", "1234", "sip:bob@example.com", InvalidArgument),
])
def test_refusals(world, billing, number, pin, called, error):
    with pytest.raises(error):
        auth(billing, login(number, pin, called))


def test_stage_two_grants_the_largest_affordable_time(world, billing):
    grant = auth(billing, login("1000000008", "1234", "447911123456"))
    assert isinstance(grant, Grant) and grant.seconds == 3996 and grant.rate_prefix == "4479"
    # 0.50 at 0.05/min to the UK: 600 s
    assert auth(billing, login("1000000016", "2345", "442071234567")).seconds == 600


def test_repeated_balance_queries_charge_nothing(world, billing):
    for _ in range(3):
        auth(billing, login("1000000008", "1234"))
    assert balance(world, "1000000008") == Decimal("10.00")


def acct(status, origin, seconds=None, number="1000000008", dest="447911123456",
         conf=CONF, gw="127.0.0.1", delay="0", **extra):
    pairs = {"Acct-Status-Type": status, "Acct-Session-Id": "000B5571",
             "User-Name": number, "Calling-Station-Id": "15551234567",
             "Called-Station-Id": dest, "h323-conf-id": conf,
             "h323-call-origin": f"h323-call-origin={origin}",
             "Acct-Delay-Time": delay, "Kondge-Gateway-Address": gw}
    if seconds is not None:
        pairs["Acct-Session-Time"] = str(seconds)
    pairs.update(extra)
    return accounting_record(tuple(pairs.items()), NOW)


def account(billing, rec):
    return billing.account(billing.gateways.get(rec.gateway_address), rec)


def authorise(billing, number="1000000008", pin="1234", dest="447911123456", gw="127.0.0.1"):
    """Stage 2 of the call CONF: the hold its accounting is billed by."""
    grant = auth(billing, login(number, pin, dest, gw=gw))
    assert isinstance(grant, Grant)
    return grant


def ledger(db, number):
    return db.run(lambda cur: (cur.execute(
        """SELECT l.kind, l.amount, l.key FROM kondge.ledger_entry l JOIN kondge.card c
            ON c.id = l.card_id WHERE c.number = %s ORDER BY l.id""", (number,)),
        cur.fetchall())[1])


def test_a_call_is_charged_once_on_its_billed_leg(world, billing):
    authorise(billing)
    for rec in (acct("Start", "answer"), acct("Start", "originate"),
                acct("Stop", "originate", 125), acct("Stop", "answer", 150)):
        account(billing, rec)
    assert balance(world, "1000000008") == Decimal("9.6850")     # 126 s at 0.15
    entries = ledger(world, "1000000008")
    assert [(e["kind"], e["amount"]) for e in entries] == [
        ("issue", Decimal("10.00")), ("call", Decimal("-0.3150"))]
    cdrs = world.run(lambda cur: (cur.execute("SELECT * FROM kondge.cdr"), cur.fetchall())[1])
    assert len(cdrs) == 1 and cdrs[0]["charge"] == Decimal("0.3150")
    assert cdrs[0]["duration"] == 125 and cdrs[0]["rate_prefix"] == "4479"
    legs = world.run(lambda cur: (cur.execute(
        "SELECT leg, session_time FROM kondge.call_leg ORDER BY leg"), cur.fetchall())[1])
    assert [(l["leg"], l["session_time"]) for l in legs] == [("answer", 150), ("originate", 125)]


def test_two_stops_of_a_call_served_at_once_make_one_cdr(world, billing, monkeypatch):
    """Two processes serve two Stops of the billed leg of a call nobody
    authorised (two Acct-Session-Ids) at once: both find no hold and no CDR;
    the one that settles first makes the call's CDR, the other is kept on its
    leg, flagged, and charges nothing (it is not parked)."""
    first = acct("Stop", "originate", 125)
    second = acct("Stop", "originate", 300, **{"Acct-Session-Id": "000B5572"})
    settle, seen = billing._settle, []

    def meanwhile(*args, **kwargs):           # the second is served between the two steps
        if not seen:
            seen.append(None)
            seen[0] = account(billing, second)
        return settle(*args, **kwargs)
    monkeypatch.setattr(billing, "_settle", meanwhile)
    done = account(billing, first)
    assert (seen[0].outcome, done.outcome) == ("charged", "recorded")
    assert balance(world, "1000000008") == Decimal("10.00")      # nobody authorised it
    cdrs = world.run(lambda cur: (cur.execute(
        "SELECT acct_session_id, flags FROM kondge.cdr"), cur.fetchall())[1])
    assert [(c["acct_session_id"], "no-authorisation" in c["flags"]) for c in cdrs] == [
        ("000B5572", True)]
    legs = world.run(lambda cur: (cur.execute(
        "SELECT acct_session_id, flags FROM kondge.call_leg ORDER BY id"), cur.fetchall())[1])
    assert [(l["acct_session_id"], "call-already-billed" in l["flags"]) for l in legs] == [
        ("000B5572", False), ("000B5571", True)]
    assert world.run(lambda cur: (cur.execute(
        "SELECT count(*) AS n FROM kondge.unprocessed_record"), cur.fetchone())[1])["n"] == 0


def test_retransmitted_stop_changes_nothing(world, billing):
    authorise(billing)
    first = account(billing, acct("Stop", "originate", 125))
    again = account(billing, acct("Stop", "originate", 125, delay="5"))
    assert (first.outcome, again.outcome) == ("charged", "duplicate")
    assert balance(world, "1000000008") == Decimal("9.6850")


def test_stop_before_start_and_start_after_stop(world, billing):
    authorise(billing)
    assert account(billing, acct("Stop", "originate", 60)).outcome == "charged"
    assert account(billing, acct("Start", "originate")).outcome == "recorded"
    assert account(billing, acct("Start", "originate")).outcome == "duplicate"
    assert balance(world, "1000000008") == Decimal("9.8500")


def test_billed_leg_without_user_name_is_charged_to_the_authorised_card(world, billing):
    authorise(billing)
    account(billing, acct("Start", "answer"))
    account(billing, acct("Stop", "originate", 60, number=None))
    assert balance(world, "1000000008") == Decimal("9.8500")


def test_overrun_never_takes_a_prepaid_card_below_zero(world, billing):
    # 0.50 at 0.15/min allows 198 s; the gateway let the call run 400 s.
    authorise(billing, "1000000016", "2345")
    out = account(billing, acct("Stop", "originate", 400, number="1000000016"))
    assert out.charge == Decimal("0.50")
    assert balance(world, "1000000016") == Decimal("0.00")
    cdr = world.run(lambda cur: (cur.execute("SELECT * FROM kondge.cdr"), cur.fetchone())[1])
    assert cdr["cost"] == Decimal("1.0050") and cdr["uncollected"] == Decimal("0.5050")
    assert "overrun" in cdr["flags"]


def test_stop_for_unknown_card_is_recorded_flagged_and_charges_nothing(world, billing):
    out = account(billing, acct("Stop", "originate", 60, number="1999999996"))
    assert out.outcome == "charged" and out.charge == 0
    cdr = world.run(lambda cur: (cur.execute("SELECT * FROM kondge.cdr"), cur.fetchone())[1])
    assert {"unknown-card", "no-authorisation"} <= set(cdr["flags"])


def test_generic_gateway_bills_by_session_id(world, billing):
    # its Access-Request carries no call id: the Stop claims the hold by card and destination
    assert auth(billing, access_request((
        ("User-Name", "1000000008"), ("User-Password", "1234"),
        ("Called-Station-Id", "15551230000"), ("Kondge-Gateway-Address", "127.0.0.3")))).seconds
    rec = accounting_record((("Acct-Status-Type", "Stop"), ("Acct-Session-Id", "lucent-77"),
                             ("Acct-Session-Time", "61"), ("User-Name", "1000000008"),
                             ("Called-Station-Id", "15551230000"),
                             ("Kondge-Gateway-Address", "127.0.0.3")), NOW)
    assert account(billing, rec).outcome == "charged"
    assert account(billing, rec).outcome == "duplicate"
    assert balance(world, "1000000008") == Decimal("9.9780")   # 66 s at 0.02 = 0.0220


def test_ledger_and_balances_reconcile(world, billing):
    authorise(billing)
    account(billing, acct("Stop", "originate", 125))
    mismatch = world.run(lambda cur: (cur.execute("SELECT * FROM kondge.v_balance_mismatch"),
                                      cur.fetchall())[1])
    assert mismatch == []


@pytest.mark.parametrize("sql", [
    "DELETE FROM kondge.gateway WHERE name = 'demo-gw'",
    "UPDATE kondge.gateway SET id = 999 WHERE name = 'demo-gw'",
    "TRUNCATE kondge.gateway",
    "DELETE FROM kondge.tariff_version WHERE id = (SELECT tariff_version_id FROM kondge.cdr)",
    "UPDATE kondge.tariff_version SET id = 999 WHERE id = (SELECT tariff_version_id FROM kondge.cdr)",
    "TRUNCATE kondge.tariff_version",
])
def test_call_records_keep_their_gateway_and_tariff_version(world, billing, sql):
    authorise(billing)
    account(billing, acct("Stop", "originate", 60))
    with pytest.raises(psycopg2.Error) as refused:
        world.run(lambda cur: cur.execute(sql))
    if "kondge.tariff_version WHERE" in sql or "kondge.tariff_version SET" in sql:
        # a loaded version never changes nor goes (tariff_unchanged.sql)
        assert isinstance(refused.value, psycopg2.errors.InsufficientPrivilege)
    elif not sql.startswith("TRUNCATE"):
        assert isinstance(refused.value, psycopg2.errors.ForeignKeyViolation)
    kept = world.run(lambda cur: (cur.execute(
        """SELECT count(*) AS n FROM kondge.cdr d JOIN kondge.gateway g ON g.id = d.gateway_id
             JOIN kondge.tariff_version v ON v.id = d.tariff_version_id"""), cur.fetchone())[1])
    assert kept["n"] == 1
    # a gateway no call names can go, and one that calls name can be removed
    world.run(lambda cur: cur.execute("DELETE FROM kondge.gateway WHERE name = 'lucent-1'"))
    assert world.run(lambda cur: gateways.remove(cur, "demo-gw"))


@pytest.mark.parametrize("sql", [
    "DELETE FROM kondge.gateway WHERE name = 'demo-gw'",
    "UPDATE kondge.gateway SET id = 999 WHERE name = 'demo-gw'",
    "TRUNCATE kondge.gateway",
])
def test_a_gateway_whose_call_is_not_settled_yet_stays(world, billing, sql):
    """A call being settled has no CDR yet, but its hold (or its leg) names
    the gateway: the gateway stays for the CDR to come."""
    authorise(billing)
    with pytest.raises(psycopg2.errors.ForeignKeyViolation, match="kondge gateways remove"):
        world.run(lambda cur: cur.execute(sql))
    account(billing, acct("Stop", "originate", 60))
    kept = world.run(lambda cur: (cur.execute(
        "SELECT count(*) AS n FROM kondge.cdr d JOIN kondge.gateway g ON g.id = d.gateway_id"),
        cur.fetchone())[1])
    assert kept["n"] == 1


def test_a_gateway_that_only_a_cdr_names_stays(world, billing):
    """The CDR alone (its legs and hold gone) keeps its gateway."""
    authorise(billing)
    account(billing, acct("Stop", "originate", 60))
    world.run(lambda cur: cur.execute("DELETE FROM kondge.call_leg; "
                                      "DELETE FROM kondge.reservation"))
    for sql in ("DELETE FROM kondge.gateway WHERE name = 'demo-gw'",
                "UPDATE kondge.gateway SET id = 999 WHERE name = 'demo-gw'",
                "TRUNCATE kondge.gateway"):
        with pytest.raises(psycopg2.errors.ForeignKeyViolation, match="gateways remove"):
            world.run(lambda cur: cur.execute(sql))


def test_hook_answers_with_exact_types(world, billing):
    hook, radiusd, _ = load_hook(billing)
    code, reply, control = hook.authorize(tuple(
        (k, v) for k, v in [("User-Name", "1000000008"), ("User-Password", "1234"),
                            ("Called-Station-Id", "18005550100"),
                            ("Kondge-Gateway-Address", "127.0.0.2")]))
    assert code == radiusd.RLM_MODULE_OK and type(code) is int
    assert reply == (("Quintum-h323-return-code", "h323-return-code=0"),
                     ("Quintum-h323-credit-amount", "h323-credit-amount=10.00"),
                     ("Quintum-h323-currency-type", "h323-currency-type=USD"),
                     ("Quintum-h323-preferred-lang", "h323-preferred-lang=en"),
                     ("Quintum-h323-billing-model", "h323-billing-model=1"))
    assert control == (("Auth-Type", ":=", "Accept"),)
    assert all(type(x) is str for pair in reply + control for x in pair)


def test_dead_database_is_unavailable_not_a_refusal(pin_key):
    from kondge_billing.store.gateways import Gateway, GatewayDirectory
    from kondge_billing.calls.service import Billing
    dead = Database("host=/nonexistent port=1 dbname=x user=x")
    gw = Gateway(1, "gw", "127.0.0.1", "s", "cisco", "optional", "originate", 1)
    b = Billing(dead, pin_key, GatewayDirectory(lambda: [gw]))
    with pytest.raises(Unavailable):
        auth(b, login("1000000008", "1234"))
    hook, radiusd, _ = load_hook(b)
    # nowhere to keep it (no database, no spool that can be written): no answer
    assert hook.accounting((
        ("Acct-Status-Type", "Stop"), ("Acct-Session-Id", "s"), ("Acct-Session-Time", "5"),
        ("Kondge-Gateway-Address", "127.0.0.1"))) == (
            radiusd.RLM_MODULE_FAIL, (), (("Kondge-No-Answer", "1"),))


def test_parked_record_is_kept_whole(world, billing):
    billing.park((("Acct-Status-Type", "Stop"), ("User-Name", "1000000008"), ("junk",)), "boom")
    row = world.run(lambda cur: (cur.execute("SELECT pairs, error FROM kondge.unprocessed_record"),
                                 cur.fetchone())[1])
    assert row["pairs"] == [["Acct-Status-Type", "Stop"], ["User-Name", "1000000008"]]
    assert row["error"] == "boom"


def test_the_cluster_runs_with_the_call_path_settings(db):
    """stack.start_postgres writes kondge.conf at every start: rarer
    checkpoints, no JIT, and every commit still flushed."""
    def settings(cur):
        cur.execute("SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%s)",
                    (["max_wal_size", "checkpoint_timeout", "jit", "synchronous_commit",
                      "fsync", "commit_delay"],))
        return {row["name"]: (row["setting"], row["unit"]) for row in cur.fetchall()}
    found = db.run(settings)
    assert found == {"max_wal_size": ("4096", "MB"), "checkpoint_timeout": ("900", "s"),
                     "jit": ("off", None), "synchronous_commit": ("on", None),
                     "fsync": ("on", None), "commit_delay": ("0", None)}


def test_an_accepted_login_teaches_the_stage_of_later_requests(world, billing):
    first = login("1000000008", "1234")
    gateway = billing.gateways.get(first.gateway_address)
    assert billing.access_numbers == set()
    assert not billing.continues_call(gateway, first)            # cannot tell yet
    assert auth(billing, first) == Login(Decimal("10.00"), "USD", "en")
    assert billing.access_numbers == {"18005550100"}
    assert not billing.continues_call(gateway, first)            # a stage 1 again
    assert billing.continues_call(gateway, login("1000000008", "1234", called="447911123456"))


def test_a_refused_login_teaches_nothing(world, billing):
    with pytest.raises(WrongPin):
        auth(billing, login("1000000008", "1235"))
    assert billing.access_numbers == set()


def test_a_login_named_by_service_type_teaches_no_number(world, billing):
    named = login("1000000008", "1234", called="15550009999", **{
        "Service-Type": "Authenticate-Only"})
    assert auth(billing, named) == Login(Decimal("10.00"), "USD", "en")
    assert billing.access_numbers == set()
