"""Tariffs in the real PostgreSQL: loads, versions in force, rating_context, re-rating."""

import zlib
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo
from decimal import Decimal
from pathlib import Path
from textwrap import dedent

import psycopg2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kondge_billing.store import cards, gateways
from kondge_billing.operations import demo
from kondge_billing.calls import sessions
from kondge_billing.store.gateways import GatewayDirectory, all_gateways
from kondge_billing.edge.request import access_request, accounting_record
from kondge_billing.calls.service import Billing, Login
from kondge_billing.rating import diff, engine, tariff_file
from kondge_billing.store import prices, tariffs
from kondge_billing.store.db import Database
from kondge_billing.rating.resolve import context_for
from tests.support.cards import luhn_number

HOME = Path(__file__).resolve().parents[2]
EXAMPLE = HOME / "tariffs" / "example.yaml"


def load_text(db, text, name="inline.yaml"):
    doc, problems = tariff_file.parse(dedent(text), name)
    assert problems == []
    return db.run(lambda cur: tariffs.load(cur, doc, name))


@pytest.fixture
def world(db, pin_key):
    def setup(cur):
        demo.load(cur, pin_key)
        gateways.add(cur, "fra-1", "127.0.0.9", "f-secret", "cisco")
        # a card is in its category's currency
        cur.execute("INSERT INTO kondge.category (name, currency) VALUES ('gold', 'EUR'), "
                    "('eur', 'EUR')")
        cards.add(cur, pin_key, "3000000004", "1111", "10.00", "EUR", category="gold")
        cards.add(cur, pin_key, "3000000012", "2222", "10.00", "EUR", category="eur")
    db.run(setup)
    db.run(lambda cur: demo.load_tariff_file(cur, EXAMPLE))
    db.run(lambda cur: cur.execute("UPDATE kondge.card SET tariff_id = "
                                   "(SELECT id FROM kondge.tariff WHERE name = 'intl') "
                                   "WHERE currency = 'EUR'"))
    return db


CALLS = [  # destination, category, caller, access, gateway
    ("4915112345", "standard", "4930123", None, None),
    ("4915112345", "gold", "4930123", None, None),
    ("4930123456", "standard", "4930123", "498001234", "fra-1"),
    ("4930123456", "standard", "3312345", "498001234", "fra-1"),
    ("4990111", "standard", None, None, None),
    ("447911123456", "standard", None, None, None),
    ("33123456", "standard", None, None, None),          # no such destination
]


@pytest.mark.parametrize("destination, category, caller, access, gateway", CALLS)
def test_sql_and_python_choose_the_same_plan_destination_and_price(
        world, destination, category, caller, access, gateway):
    doc, _ = tariff_file.parse_file(EXAMPLE)
    at = datetime(2026, 3, 3, 21, 58, tzinfo=timezone.utc)

    def lookup(cur):
        gw = tariffs.gateway_id(cur, gateway) if gateway else None
        cur.execute("SELECT id FROM kondge.tariff WHERE name = 'intl'")
        return tariffs.rating_context(cur, destination, at, category=category, caller=caller,
                                    access=access, gateway_id=gw,
                                    tariff_id=cur.fetchone()["id"])
    from_sql = world.run(lookup)
    from_file = context_for(doc, destination, category=category, caller=caller,
                            access=access, gateway=gateway)
    if from_file is None:
        assert from_sql is None
        return
    assert (from_sql.plan, from_sql.destination, from_sql.prefix) == (
        from_file.plan, from_file.destination, from_file.prefix)
    assert engine.call_cost(from_sql, at, 600) == engine.call_cost(from_file, at, 600)


def test_a_tariff_is_found_by_its_name(world):
    found = world.run(lambda cur: (tariffs.tariff_id(cur, "intl"), tariffs.tariff_id(cur, "nope")))
    intl = world.run(lambda cur: tariffs.versions(cur, "intl"))[0]
    loaded = world.run(lambda cur: tariffs.rating_context(
        cur, "4915112345", datetime.now(timezone.utc), tariff_id=found[0]))
    assert found[1] is None and loaded.tariff == intl["tariff"] == "intl"


def demo_version(valid_from: str, per_minute: str = "0.30") -> str:
    """A version of the demo tariff: UK mobiles only, at 0.30 a minute."""
    return f"""
        tariff: demo
        valid_from: {valid_from}
        currency: USD
        defaults: {{initial: 60, increment: 6}}
        destinations: {{UK mobile: [4470-4479]}}
        plans: [{{name: standard, rates: [{{destination: UK mobile, per_minute: {per_minute}}}]}}]
    """


def test_the_version_in_force_is_chosen_by_time(world):
    loaded = load_text(world, demo_version("2030-01-01T00:00:00+00:00"))
    assert loaded["version"] == 2

    def price_at(at):
        return world.run(lambda cur: tariffs.rating_context(cur, "447911123456", at))
    before = price_at(datetime(2029, 12, 31, 23, 59, tzinfo=timezone.utc))
    after = price_at(datetime(2030, 1, 1, tzinfo=timezone.utc))
    assert (before.version, after.version) == (1, 2)
    assert before.rates["*"].steps[0].per_minute == Decimal("0.15")
    assert after.rates["*"].steps[0].per_minute == Decimal("0.30")
    # the 2030 version has no UK landline: blocked from then on
    assert world.run(lambda cur: tariffs.rating_context(
        cur, "442071234567", datetime(2030, 6, 1, tzinfo=timezone.utc))) is None


def _billing(db, pin_key, at):
    return Billing(db, pin_key, GatewayDirectory(lambda: db.run(all_gateways), max_age=0),
                   clock=lambda: at)


def _authorize(billing, req):
    return billing.authorize(billing.gateways.get(req.gateway_address), req)


def _stage2(number, pin, called, gw="127.0.0.1"):
    return access_request((("User-Name", number), ("User-Password", pin),
                           ("Calling-Station-Id", "4930123"), ("Called-Station-Id", called),
                           ("Service-Type", "Outbound-User"),
                           ("Kondge-Gateway-Address", gw)))


def test_stage_two_grants_across_the_off_peak_boundary(world, pin_key):
    at = datetime(2026, 3, 3, 20, 58, tzinfo=timezone.utc)     # 21:58 in Berlin
    grant = _authorize(_billing(world, pin_key, at), _stage2("3000000012", "2222", "4915112345"))
    # 2 minutes peak at 0.12 = 0.24, the other 9.76 at 0.06 off-peak = 9760 s more,
    # cut to the last whole 6 s step (60 + 1636 x 6); the start's rate alone gives 4998
    assert grant.seconds == 9876 and grant.rate_prefix == "4915"
    gold = _authorize(_billing(world, pin_key, at), _stage2("3000000004", "1111", "4915112345"))
    assert gold.seconds == 60000                                 # 0.01/min, per second


def _stop(conf, seconds, connect, number="3000000012", called="4915112345", gw="127.0.0.1"):
    when = connect.astimezone(timezone.utc)
    h323 = when.strftime("%H:%M:%S.000 GMT %a %b %d %Y")
    return accounting_record((
        ("Acct-Status-Type", "Stop"), ("Acct-Session-Id", conf[-8:]), ("User-Name", number),
        ("Calling-Station-Id", "4930123"), ("Called-Station-Id", called),
        ("h323-conf-id", f"h323-conf-id={conf}"),
        ("h323-call-origin", "h323-call-origin=originate"),
        ("h323-connect-time", f"h323-connect-time={h323}"),
        ("Acct-Session-Time", str(seconds)), ("Kondge-Gateway-Address", gw)),
        connect + timedelta(seconds=seconds))


def _authorised(billing, conf, called, number="3000000012", pin="2222", gw="127.0.0.1"):
    """Stage 2 of the call `conf`: the authorisation its Stop is billed by."""
    return _authorize(billing, access_request((
        ("User-Name", number), ("User-Password", pin), ("Calling-Station-Id", "4930123"),
        ("Called-Station-Id", called), ("h323-conf-id", f"h323-conf-id={conf}"),
        ("Kondge-Gateway-Address", gw))))


def _next_weekday_in_berlin(hour, minute):
    """The next Monday-to-Friday hour:minute on Berlin's wall clock, in UTC."""
    berlin = ZoneInfo("Europe/Berlin")
    day = datetime.now(berlin).date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime.combine(day, time(hour, minute), tzinfo=berlin).astimezone(timezone.utc)


def test_accounting_prices_with_the_engine_at_the_calls_start(world, pin_key):
    billing = _billing(world, pin_key, datetime.now(timezone.utc))
    connect = _next_weekday_in_berlin(21, 58)          # 2 minutes before off-peak
    conf = "AAAA0001 0F4411D6 AB5591F0 CBF3D765"
    _authorised(billing, conf, "4915112345")
    out = billing.account(billing.gateways.get("127.0.0.1"), _stop(conf, 600, connect))
    assert out.charge == Decimal("0.2400") + Decimal("0.4800")   # 120 s peak, 480 s off-peak
    cdr = world.run(lambda cur: (cur.execute("SELECT * FROM kondge.cdr"), cur.fetchone())[1])
    versions = world.run(lambda cur: tariffs.versions(cur, "intl"))
    assert cdr["tariff_version_id"] == versions[0]["version_id"] and cdr["rate_prefix"] == "4915"


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seconds=st.integers(1, 5000), minute=st.integers(0, 7 * 24 * 60),
       called=st.sampled_from(["4915112345", "4930123456", "4990111", "447911123456"]))
def test_rerating_a_stored_call_with_its_version_gives_its_recorded_charge(
        world, pin_key, seconds, minute, called):
    billing = _billing(world, pin_key, datetime.now(timezone.utc))
    connect = (datetime.now(timezone.utc).replace(microsecond=0, second=0)
               + timedelta(minutes=minute))
    # one call per example: the destination is part of the call's identity
    conf = f"{minute:08X} {seconds:08X} AB5591F0 {zlib.crc32(called.encode()):08X}"
    number = luhn_number()

    def new_card(cur):
        cards.add(cur, pin_key, number, "1111", "1000.00", "EUR", category="eur")
        cur.execute("""UPDATE kondge.card SET tariff_id = (SELECT id FROM kondge.tariff
                                                            WHERE name = 'intl')
                        WHERE number = %s""", (number,))
    world.run(new_card)
    _authorised(billing, conf, called, number=number, pin="1111")
    rec = _stop(conf, seconds, connect, number=number, called=called)
    billing.account(billing.gateways.get("127.0.0.1"), rec)
    stored = world.run(lambda cur: tariffs.stored_calls(cur, connect, connect + timedelta(0, 1)))
    mine = [c for c in stored if c["destination"] == called and c["duration"] == seconds]
    assert mine
    source = world.run(lambda cur: tariffs.version_source(cur, "intl@1"))
    doc, _ = tariff_file.parse(source["source"], "intl@1")
    rerated = diff.rerate(mine, doc, doc)
    assert rerated["old"] == rerated["recorded"] == sum(c["cost"] for c in mine)


def _plan_of_cdr(db, conf):
    return db.run(lambda cur: (cur.execute(
        """SELECT p.name AS plan, d.access_number FROM kondge.cdr d
             JOIN kondge.tariff_plan p ON p.id = d.plan_id
            WHERE d.call_id = %s""", (conf,)), cur.fetchone())[1])


def test_the_number_stage_one_came_in_on_prices_stage_two_and_the_cdr_in_any_order(
        world, pin_key):
    """The access number is stage 1's Called-Station-Id: stage 2 and the CDR are
    priced by it whether the incoming leg's accounting came before, after or never."""
    world.run(lambda cur: cur.execute(
        "INSERT INTO kondge.access_number (number) VALUES ('498001234')"))
    billing = _billing(world, pin_key, datetime.now(timezone.utc))
    fra = billing.gateways.get("127.0.0.9")
    conf = "CCCC0001 0F4411D6 AB5591F0 CBF3D765"
    login = _authorize(billing, access_request((
        ("User-Name", "3000000012"), ("User-Password", "2222"),
        ("Calling-Station-Id", "4930123"), ("Called-Station-Id", "498001234"),
        ("h323-conf-id", f"h323-conf-id={conf}"), ("Kondge-Gateway-Address", "127.0.0.9"))))
    assert isinstance(login, Login)
    # stage 2 before any accounting: the toll-free plan (0.03/min) already
    toll_free = _authorised(billing, conf, "4930123456", gw="127.0.0.9")
    live = world.run(lambda cur: sessions.live(cur, "3000000012"))
    assert live[0]["access_number"] == "498001234"
    # the billed Stop before the incoming leg's records: still the toll-free plan
    connect = datetime.now(timezone.utc) - timedelta(seconds=60)
    billing.account(fra, _stop(conf, 60, connect, called="4930123456", gw="127.0.0.9"))
    assert _plan_of_cdr(world, conf) == {"plan": "toll-free-entry",
                                         "access_number": "498001234"}
    # another call with no stage 1 and no incoming leg: the standard plan
    other = "CCCC0002 0F4411D6 AB5591F0 CBF3D765"
    standard = _authorised(billing, other, "4930123456", gw="127.0.0.9")
    assert standard.seconds > toll_free.seconds             # 0.02/min against 0.03/min
    billing.account(fra, _stop(other, 60, connect, called="4930123456", gw="127.0.0.9"))
    assert _plan_of_cdr(world, other) == {"plan": "standard", "access_number": None}


SURCHARGED = """
    tariff: surcharged
    valid_from: 2026-01-01T00:00:00+00:00
    currency: USD
    timezone: America/New_York
    defaults: {initial: 60, increment: 6}
    destinations: {UK: [44]}
    plans: [{name: standard, rates: [{destination: UK, per_minute: 0.05}]}]
    surcharges:
      - {name: everyone, connect: 0.10}
      - {name: gold extra, match: {categories: [gold]}, per_minute: 0.01}
      - {name: toll-free entry, match: {access: ["1800"]}, per_minute: 0.03, connect: 0.05}
      - {name: hotel, match: {gateways: [fra-1], callers: ["4930"]}, connect: 0.25}
"""


def _surcharged(world, call):
    loaded = load_text(world, SURCHARGED)
    doc, _ = tariff_file.parse(dedent(SURCHARGED), "s.yaml")
    at = datetime(2026, 3, 8, 6, 30, tzinfo=timezone.utc)      # New York's DST change

    def lookup(cur):
        gw = tariffs.gateway_id(cur, call.get("gateway")) if call.get("gateway") else None
        return tariffs.rating_context(cur, "442071234567", at, category=call.get("category"),
                                    caller=call.get("caller"), access=call.get("access"),
                                    gateway_id=gw, tariff_id=loaded["tariff_id"])
    return world.run(lookup), context_for(doc, "442071234567", **call), at


@pytest.mark.parametrize("category, expected", [("gold", "0.2200"), ("standard", "0.2000")])
def test_surcharges_are_stored_and_rated_through_the_database(world, category, expected):
    from_sql, from_file, at = _surcharged(world, {"category": category})
    assert from_sql.surcharges == from_file.surcharges                # read back exactly
    stored = world.run(lambda cur: (cur.execute(
        "SELECT jsonb_typeof(rules->'surcharges'->0->'connect') AS kind, "
        "rules->'surcharges'->0->>'connect' AS connect FROM kondge.tariff_version "
        "WHERE id = %s", (from_sql.version_id,)), cur.fetchone())[1])
    assert (stored["kind"], stored["connect"]) == ("string", "0.10")   # money as text
    # 120 s at 0.05 (+0.01 gold) + 0.10 connect
    assert engine.call_cost(from_sql, at, 120) == engine.call_cost(from_file, at, 120) \
        == Decimal(expected)
    assert engine.allowed_seconds(from_sql, at, Decimal("1.00"), 86400) == \
        engine.allowed_seconds(from_file, at, Decimal("1.00"), 86400)


def test_surcharges_by_access_number_caller_and_gateway_through_the_database(world):
    call = {"category": "standard", "access": "18005550100", "caller": "4930123",
            "gateway": "fra-1"}
    from_sql, from_file, at = _surcharged(world, call)
    assert [s.name for s in engine.surcharges_for(from_file)] == [
        "everyone", "toll-free entry", "hotel"]
    assert (from_sql.access_number, from_sql.caller, from_sql.gateway) == (
        "18005550100", "4930123", "fra-1")
    assert engine.call_cost(from_sql, at, 120) == engine.call_cost(from_file, at, 120)


# --- the call path's ratings, by their ids (store/prices.py) ---------------------

class CountingCursor:
    """The real cursor, counting the statements run through it."""

    def __init__(self, cur):
        self.cur, self.statements = cur, []

    def execute(self, sql, params=None):
        self.statements.append(sql)
        return self.cur.execute(sql, params)

    def fetchone(self):
        return self.cur.fetchone()


def _by_ids(cur, destination, at, category, caller, access, gateway, tariff_id):
    gw = tariffs.gateway_id(cur, gateway) if gateway else None
    cur.execute("SELECT * FROM kondge.rating_choice(%s, %s, %s, %s, %s, %s, %s)",
                (category, destination, caller, access, gw, at, tariff_id))
    ids = cur.fetchone()
    return prices.call_rating(cur, ids["version_id"], ids["plan_id"], ids["destination_id"],
                              ids["prefix"], category=category, access_number=access,
                              caller=caller, gateway=gateway)


@pytest.mark.parametrize("destination, category, caller, access, gateway", CALLS)
def test_the_call_paths_rating_by_ids_is_the_rating_context(
        world, destination, category, caller, access, gateway):
    """What a call is priced by, its ids and the rating kept for them, is what
    rating_context() builds whole (the kept rating of one call's ids serves
    the next call with its own facts)."""
    at = datetime(2026, 3, 3, 21, 58, tzinfo=timezone.utc)

    def both(cur):
        cur.execute("SELECT id FROM kondge.tariff WHERE name = 'intl'")
        intl = cur.fetchone()["id"]
        gw = tariffs.gateway_id(cur, gateway) if gateway else None
        whole = tariffs.rating_context(cur, destination, at, category=category, caller=caller,
                                       access=access, gateway_id=gw, tariff_id=intl)
        return whole, [_by_ids(cur, destination, at, category, caller, access, gateway, intl)
                       for _ in range(2)]
    prices.forget()
    whole, (first, again) = world.run(both)
    if whole is None:
        assert first == again == prices.NO_RATING
        return
    assert first.context == again.context == whole        # every field but the scratch memo
    assert first.context is not again.context             # each call a context of its own
    assert first.ids == {"version_id": whole.version_id, "plan_id": first.ids["plan_id"],
                         "destination_id": first.ids["destination_id"],
                         "prefix": whole.prefix, "currency": whole.currency}
    assert engine.call_cost(first.context, at, 600) == engine.call_cost(whole, at, 600)


def test_a_rating_is_read_once_and_serves_other_calls_with_their_facts(world):
    """One read for a version's plan and destination; every later call to it
    brings its own facts and the prefix its number matched."""
    at = datetime(2026, 3, 3, 21, 58, tzinfo=timezone.utc)
    prices.forget()

    def twice(cur):
        counted = CountingCursor(cur)
        cur.execute("SELECT * FROM kondge.rating_choice('standard', '447911123456', NULL, "
                    "NULL, NULL, %s)", (at,))
        ids = cur.fetchone()
        key = (ids["version_id"], ids["plan_id"], ids["destination_id"], ids["prefix"])
        first = prices.call_rating(counted, *key, category="standard", caller="4930123")
        read = len(counted.statements)
        second = prices.call_rating(counted, *key[:3], key[3] + "1", category="gold",
                                    access_number="18005550100", gateway="fra-1")
        return first, second, read, len(counted.statements)
    first, second, read, after = world.run(twice)
    assert (read, after) == (1, 1)                       # the second call read nothing
    assert (first.context.category, first.context.caller) == ("standard", "4930123")
    assert (second.context.category, second.context.access_number, second.context.caller,
            second.context.gateway) == ("gold", "18005550100", None, "fra-1")
    # another number of the same destination: the prefix it matched is its own
    assert (first.context.prefix, second.context.prefix) == (first.ids["prefix"],
                                                            first.ids["prefix"] + "1")
    assert second.ids == dict(first.ids, prefix=first.ids["prefix"] + "1")
    assert first.context.rates == second.context.rates


def test_ids_without_a_rate_are_no_rating(world):
    """A plan with no rate for the destination, or ids of no version: the
    call is unrated (blocked at stage 2), never priced by something else."""
    prices.forget()
    version = world.run(lambda cur: (cur.execute(
        "SELECT max(id) AS v FROM kondge.tariff_version"), cur.fetchone())[1])["v"]
    assert world.run(lambda cur: prices.call_rating(cur, version, 999999, 999999, "44")) \
        == prices.NO_RATING
    assert world.run(lambda cur: prices.call_rating(cur, 999999, 1, 1, "44")) \
        == prices.NO_RATING
    assert world.run(lambda cur: prices.call_rating(cur, None, None, None, None)) \
        == prices.NO_RATING


def test_a_new_connection_forgets_the_kept_ratings(world, dsn):
    at = datetime(2026, 3, 3, 21, 58, tzinfo=timezone.utc)
    world.run(lambda cur: _by_ids(cur, "447911123456", at, "standard", None, None, None, None))
    assert prices._KEPT
    other = Database(dsn)
    try:
        other.run(lambda cur: cur.execute("SELECT 1"))
        assert not prices._KEPT
    finally:
        other.close()


@pytest.mark.parametrize("table, column", [
    ("tariff_version", "valid_from"), ("tariff_plan", "priority"),
    ("tariff_destination", "name"), ("tariff_prefix", "destination_id"),
    ("tariff_rate", "rate")])
@pytest.mark.parametrize("change", ["UPDATE", "DELETE"])
def test_a_loaded_tariff_version_never_changes(world, table, column, change):
    """Each process keeps the ratings it read by their ids, and CDRs name
    their version: a version, once loaded, is never changed or deleted
    under them, by any role (a new price is a new version)."""
    sql = (f"UPDATE kondge.{table} SET {column} = {column}" if change == "UPDATE"
           else f"DELETE FROM kondge.{table}")
    with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="never changes"):
        world.run(lambda cur: cur.execute(sql))
    # a new version still loads, and is what new calls get
    loaded = load_text(world, demo_version("2020-01-01T00:00:00+00:00"))
    now = world.run(lambda cur: tariffs.rating_context(cur, "447911123456",
                                                       datetime.now(timezone.utc)))
    assert now.version == loaded["version"]


def test_a_version_loaded_by_mistake_is_put_out_of_force_by_the_corrected_one(world):
    """A version cannot be deleted: the corrected file, loaded with the same
    valid_from, applies from then on (of two versions from the same moment
    the one loaded last)."""
    wrong = load_text(world, demo_version("2021-01-01T00:00:00+00:00", "3.00"))
    right = load_text(world, demo_version("2021-01-01T00:00:00+00:00", "0.25"))
    now = world.run(lambda cur: tariffs.rating_context(cur, "447911123456",
                                                       datetime.now(timezone.utc)))
    assert now.version == right["version"] == wrong["version"] + 1
    assert now.rates["*"].steps[0].per_minute == Decimal("0.25")


def test_the_kept_ratings_are_bounded(world, monkeypatch):
    """A process keeps at most MEMO_SIZE ratings (ids without a rate too):
    full, it empties and fills again."""
    prices.forget()
    monkeypatch.setattr(prices, "MEMO_SIZE", 3)
    for n in range(7):
        world.run(lambda cur: prices.call_rating(cur, 1, 900000 + n, 1, "44"))
        assert 1 <= len(prices._KEPT) <= 3
    assert (1, 900006, 1) in prices._KEPT
