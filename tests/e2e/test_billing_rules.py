"""Every call billed: on the card that was authorised, at its price, whatever
the gateway sends. Each test plays a call as a gateway would, through the
real FreeRADIUS, and checks what the card paid and what its CDR says."""

import os
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from kondge_billing.store import callers
from kondge_billing.store.pins import load_key
from tests.e2e.conftest import balance
from tests.e2e.test_radius import conf_id
from tests.support.cards import new_card

ACCESS = "18005550100"             # a demo access number
LONDON = "4420799990000"           # the other one
MOBILE = "447911123456"            # UK mobile: 0.15/min in the demo tariff
TARIFF = """
tariff: entry-test
valid_from: 2020-01-01T00:00:00Z
currency: USD
defaults: {initial: 60, increment: 6}
destinations: {UK: [44], UK mobile: [4470-4479]}
plans:
  - name: standard
    priority: 0
    rates:
      - {destination: UK, per_minute: 0.05}
      - {destination: UK mobile, per_minute: 0.15}
  - name: london-entry           # calls that came in on the London number
    priority: 5
    match: {access: ["4420799990000"]}
    rates:
      - {destination: UK, per_minute: 0.08}
      - {destination: UK mobile, per_minute: 0.25}
  - name: uk-callers             # callers from UK mobiles
    priority: 3
    match: {callers: ["447"]}
    rates:
      - {destination: UK, per_minute: 0.04}
      - {destination: UK mobile, per_minute: 0.12}
surcharges:                      # said once, for every plan and destination
  - {name: toll-free entry, match: {access: ["1800555"]}, per_minute: 0.03}
"""


def key(service):
    return load_key(service.settings.pin_key_file)


def card(service, amount="10.00", **kw):
    return new_card(service.db, key(service), amount, **kw)


def h323_time(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%H:%M:%S.000 GMT %a %b %d %Y")


class Call:
    """One call as a Cisco (or, with prefix 'Quintum-', a Quintum) gateway plays it."""

    def __init__(self, client, number=None, pin="1234", caller="15551234567", prefix="",
                 conf=None):
        self.client, self.number, self.pin, self.caller = client, number, pin, caller
        self.prefix = prefix
        self.conf = conf or conf_id()
        self.sessions = {"answer": os.urandom(4).hex().upper(),
                         "originate": os.urandom(4).hex().upper()}

    def h323(self, name, value):
        return (self.prefix + name, f"{name}={value}")

    def access(self, called, user=None, pin=None, caller=None, tries=1):
        pairs = [("User-Name", user or self.number), ("Calling-Station-Id", caller or self.caller),
                 ("Called-Station-Id", called), (self.prefix + "h323-conf-id", self.conf)]
        password = self.pin if pin is None else pin
        if password:
            pairs.append(("User-Password", password))
        return self.client.access(pairs, tries=tries)

    def acct(self, status, leg="originate", called=MOBILE, seconds=None, origin=True,
             call_type=True, conf=True, user=True, session=None, extra=()):
        pairs = [("Acct-Status-Type", status),
                 ("Acct-Session-Id", session or self.sessions[leg]),
                 ("Calling-Station-Id", self.caller)]
        if called is not None:
            pairs.append(("Called-Station-Id", called if leg == "originate" else ACCESS))
        if user:
            pairs.append(("User-Name", self.number if user is True else user))
        if conf:
            pairs.append((self.prefix + "h323-conf-id", self.conf))
        if origin:
            pairs.append(self.h323("h323-call-origin", leg))
        if call_type:
            pairs.append(self.h323("h323-call-type", "VoIP" if leg == "originate"
                                   else "Telephony"))
        if seconds is not None:
            pairs.append(("Acct-Session-Time", seconds))
        pairs += list(extra)
        reply = self.client.accounting(pairs)
        assert reply is not None, f"{status} {leg} not answered"
        return reply

    def talk(self, called=MOBILE, seconds=125, **kw):
        """The billed leg's Start and Stop."""
        self.acct("Start", called=called, **kw)
        self.acct("Stop", called=called, seconds=seconds, **kw)


def cdrs(service, number=None, conf=None):
    sql = "SELECT * FROM kondge.cdr WHERE " + ("card_number = %s" if number else "call_id = %s")
    return service.db.run(lambda cur: (cur.execute(sql + " ORDER BY id", (number or conf,)),
                                       cur.fetchall())[1])


def granted(reply, prefix=""):
    assert reply is not None and reply.accepted, reply and reply.pairs
    return int(reply.h323("h323-credit-time", prefix))


@pytest.fixture(scope="module")
def entry_tariff(stack_ready, tmp_path_factory):
    path = tmp_path_factory.mktemp("tariff") / "entry-test.yaml"
    path.write_text(TARIFF)
    r = stack_ready.kondge("tariffs", "load", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    return "entry-test"


@pytest.fixture(scope="module")
def uk_cisco(stack_ready):
    """A Cisco gateway in the UK: national numbers with a trunk 0, 00 abroad."""
    r = stack_ready.kondge("gateways", "add", "--name", "uk-cisco", "--address", "127.0.0.40",
                           "--secret", "ukc", "--dialect", "cisco")
    assert r.returncode == 0, r.stderr
    r = stack_ready.kondge("gateways", "modify", "uk-cisco", "--country-code", "44",
                           "--national-prefix", "0", "--international-prefix", "00")
    assert r.returncode == 0, r.stderr
    client = stack_ready.client("ukc", source="127.0.0.40")
    yield client
    client.close()


def tariffed_card(service, tariff, amount="10.00"):
    number = card(service, amount)
    service.db.run(lambda cur: cur.execute(
        "UPDATE kondge.card SET tariff_id = (SELECT id FROM kondge.tariff WHERE name = %s) "
        "WHERE number = %s", (tariff, number)))
    return number


# --- 1. the hold decides which card pays, for which destination -----------------------

def test_a_caller_login_call_is_charged_to_the_bound_card(stack_ready, cisco):
    number = card(stack_ready)
    stack_ready.db.run(lambda cur: callers.bind(cur, number, ["15557770001"]))
    call = Call(cisco, "15557770001", pin="", caller="15557770001")
    assert call.access(ACCESS).accepted
    assert granted(call.access(MOBILE)) == 3996
    call.talk(seconds=125)                     # User-Name is the caller, as in its logins
    assert balance(stack_ready, number) == Decimal("9.6850")      # 126 s at 0.15
    assert cdrs(stack_ready, number)[0]["charge"] == Decimal("0.3150")


def test_accounting_without_user_name_is_charged_to_the_authorised_card(stack_ready, cisco):
    number = card(stack_ready)
    call = Call(cisco, number)
    granted(call.access(MOBILE))
    call.talk(seconds=125, user=False)
    assert balance(stack_ready, number) == Decimal("9.6850")


def test_a_stop_naming_another_card_charges_the_authorised_one_and_is_flagged(
        stack_ready, cisco):
    payer, other = card(stack_ready), card(stack_ready)
    call = Call(cisco, payer)
    granted(call.access(MOBILE))
    call.talk(seconds=125, user=other)
    assert balance(stack_ready, payer) == Decimal("9.6850")
    assert balance(stack_ready, other) == Decimal("10.00")
    cdr = cdrs(stack_ready, conf=call.conf.split("=")[1])[0]
    assert cdr["card_number"] == payer and "card-differs" in cdr["flags"]


def test_the_authorised_destination_prices_the_call_not_the_stops(stack_ready, cisco):
    number = card(stack_ready)
    call = Call(cisco, number)
    granted(call.access(MOBILE))                        # a UK mobile grant (0.15/min)
    call.talk(called="15551230000", seconds=125)       # the Stop says a US number (0.02/min)
    assert balance(stack_ready, number) == Decimal("9.6850")
    cdr = cdrs(stack_ready, number)[0]
    assert cdr["destination"] == MOBILE and "destination-differs" in cdr["flags"]


def test_a_call_never_authorised_is_recorded_and_flagged_and_charges_nobody(
        stack_ready, cisco):
    number = card(stack_ready)
    call = Call(cisco, number)
    call.talk(seconds=125)
    assert balance(stack_ready, number) == Decimal("10.00")
    cdr = cdrs(stack_ready, conf=call.conf.split("=")[1])[0]
    assert "no-authorisation" in cdr["flags"] and cdr["charge"] == 0
    listed = stack_ready.kondge("cdrs", "list", "--flag", "no-authorisation", "--json")
    assert listed.returncode == 0 and call.conf.split("=")[1] in listed.stdout


# --- 2. the number the caller came in on prices the call, in any order ---------------

def test_the_access_number_of_stage_one_prices_stage_two_and_the_cdr(
        stack_ready, cisco, entry_tariff):
    number = tariffed_card(stack_ready, entry_tariff)
    call = Call(cisco, number)
    assert call.access(LONDON).accepted                           # stage 1 on London
    assert granted(call.access("442071234567")) == 7500          # 10.00 at 0.08
    # the billed Stop before the incoming leg's records: still London's price
    call.acct("Stop", called="442071234567", seconds=125)
    call.acct("Start", leg="answer")
    call.acct("Stop", leg="answer", seconds=150)
    assert balance(stack_ready, number) == Decimal("9.8320")     # 126 s at 0.08
    cdr = cdrs(stack_ready, number)[0]
    assert cdr["access_number"] == LONDON
    # no stage 1, no incoming leg: the standard price
    other = Call(cisco, number)
    assert granted(other.access("442071234567")) == 11796        # 9.8320 at 0.05


def test_a_surcharge_on_the_access_number_is_said_once_and_priced_in_any_order(
        stack_ready, cisco, entry_tariff):
    number = tariffed_card(stack_ready, entry_tariff)
    call = Call(cisco, number)
    assert call.access(ACCESS).accepted                           # toll-free entry
    assert granted(call.access("442071234567")) == 7500          # 10.00 at 0.05 + 0.03
    call.acct("Stop", called="442071234567", seconds=125)       # before the incoming leg
    assert balance(stack_ready, number) == Decimal("9.8320")     # 126 s at 0.08


def test_a_tariff_value_that_cannot_be_rated_is_refused_before_it_is_loaded(
        stack_ready, tmp_path):
    broken = TARIFF.replace("tariff: entry-test", "tariff: overflow").replace(
        "{destination: UK, per_minute: 0.05}", "{destination: UK, per_minute: 1e308}").replace(
        "defaults: {initial: 60, increment: 6}", "defaults: {initial: 100000000000000000000000000, increment: 6}")
    path = tmp_path / "overflow.yaml"
    path.write_text(broken)
    for command in ("validate", "load"):
        r = stack_ready.kondge("tariffs", command, str(path))
        assert r.returncode == 1, r.stdout + r.stderr
        assert "overflow.yaml:" in r.stdout + r.stderr
    assert stack_ready.db.run(lambda cur: (cur.execute(
        "SELECT count(*) AS n FROM kondge.tariff WHERE name = 'overflow'"), cur.fetchone())[1])["n"] == 0


# --- 3. every number through the gateway's numbering rules, once, at the edge --------

def test_numbers_are_normalised_for_destinations_and_caller_plans(
        stack_ready, uk_cisco, entry_tariff):
    number = tariffed_card(stack_ready, entry_tariff)
    call = Call(uk_cisco, number, caller="07700900123")
    # 00 44 ... from a UK gateway is the UK, not an unknown destination; the caller,
    # written nationally, is a UK mobile: the uk-callers plan, 10.00 at 0.04
    assert granted(call.access("004420712345678")) == 15000
    assert granted(call.access("02071234567")) == 15000          # national
    for written in ("+447700900123", "447700900123", "00447700900123"):
        assert granted(call.access("02071234567", caller=written)) == 15000, written
    # a caller from abroad gets the standard price
    assert granted(call.access("02071234567", caller="0033612345678")) == 12000
    call.talk(called="02071234567", seconds=60)
    assert cdrs(stack_ready, number)[0]["destination"] == "442071234567"


# --- 4. the talk time from the best evidence ----------------------------------------------

@pytest.mark.parametrize("session_time", [None, 0, 4294967295])
def test_a_stop_without_a_usable_session_time_is_billed_by_its_h323_times(
        stack_ready, cisco, session_time):
    number = card(stack_ready)
    call = Call(cisco, number)
    granted(call.access(MOBILE))
    connect = datetime.now(timezone.utc) - timedelta(seconds=70)
    times = [call.h323("h323-connect-time", h323_time(connect)),
             call.h323("h323-disconnect-time", h323_time(connect + timedelta(seconds=70)))]
    call.acct("Start")
    call.acct("Stop", seconds=session_time, extra=times)
    assert balance(stack_ready, number) == Decimal("9.8200")      # 72 s at 0.15
    cdr = cdrs(stack_ready, number)[0]
    assert cdr["duration"] == 70 and "duration-from-h323-times" in cdr["flags"]


def test_a_generic_gateway_s_start_and_stop_time_a_call_that_reports_none(stack_ready):
    lucent = stack_ready.client("l-secret", source="127.0.0.3")
    number = card(stack_ready)
    try:
        assert lucent.access([("User-Name", number), ("User-Password", "1234"),
                              ("Called-Station-Id", MOBILE)]).accepted
        session = os.urandom(4).hex()
        base = [("Acct-Session-Id", session), ("User-Name", number),
                ("Called-Station-Id", MOBILE)]
        assert lucent.accounting([("Acct-Status-Type", "Start")] + base) is not None
        import time
        time.sleep(2.2)
        assert lucent.accounting([("Acct-Status-Type", "Stop"), ("Acct-Session-Time", 0)]
                                 + base) is not None
    finally:
        lucent.close()
    cdr = cdrs(stack_ready, number)[0]
    assert cdr["duration"] >= 2 and "duration-from-server-times" in cdr["flags"]
    assert balance(stack_ready, number) == Decimal("9.85")        # the 60 s first block


# --- 5. one leg billed per call, always ---------------------------------------------------

def test_records_without_call_origin_bill_the_voip_leg_once(stack_ready, cisco):
    number = card(stack_ready)
    call = Call(cisco, number)
    call.access(ACCESS)
    granted(call.access(MOBILE))
    for status, leg, seconds in (("Start", "answer", None), ("Start", "originate", None),
                                 ("Stop", "originate", 125), ("Stop", "answer", 150)):
        call.acct(status, leg=leg, seconds=seconds, origin=False)
    assert balance(stack_ready, number) == Decimal("9.6850")
    assert stack_ready.db.run(lambda cur: (cur.execute(
        "SELECT count(*) AS n FROM kondge.reservation r JOIN kondge.card c ON c.id = r.card_id "
        "WHERE c.number = %s", (number,)), cur.fetchone())[1])["n"] == 0


def test_a_stop_without_call_origin_after_a_start_with_it_is_billed_not_swept(
        stack_ready, cisco):
    number = card(stack_ready)
    call = Call(cisco, number)
    granted(call.access(MOBILE))
    call.acct("Start")
    call.acct("Stop", seconds=30, origin=False, call_type=False)
    assert balance(stack_ready, number) == Decimal("9.85")         # 60 s, not the grant


def test_a_gateway_that_sends_no_h323_attributes_in_accounting_is_billed_once(
        stack_ready, cisco):
    number = card(stack_ready)
    call = Call(cisco, number)
    assert call.access(ACCESS).accepted
    granted(call.access(MOBILE))
    bare = dict(origin=False, call_type=False, conf=False)
    call.acct("Start", leg="answer", **bare)
    call.acct("Start", leg="originate", **bare)
    call.acct("Stop", leg="originate", seconds=125, **bare)
    call.acct("Stop", leg="answer", seconds=150, **bare)
    assert balance(stack_ready, number) == Decimal("9.6850")      # 1 leg: 126 s at 0.15
    assert len(cdrs(stack_ready, number)) == 1


# --- 6. Stops that cannot be rated as sent ----------------------------------------------

@pytest.mark.parametrize("connect", ["00:00:01.000 GMT Thu Jan 01 1970",
                                     "23:59:59.000 GMT Fri Dec 31 9999"])
def test_a_connect_time_far_off_is_set_aside_and_the_call_billed(stack_ready, cisco, connect):
    number = card(stack_ready)
    call = Call(cisco, number)
    granted(call.access(MOBILE))
    call.acct("Start")
    call.acct("Stop", seconds=125, extra=[call.h323("h323-connect-time", connect)])
    assert balance(stack_ready, number) == Decimal("9.6850")
    assert "connect-time-implausible" in cdrs(stack_ready, number)[0]["flags"]


def test_a_stop_whose_destination_has_letters_is_billed_at_the_authorised_one(
        stack_ready, cisco):
    number = card(stack_ready)
    call = Call(cisco, number)
    granted(call.access(MOBILE))
    call.talk(called="sip:bob@example.com", seconds=125)
    assert balance(stack_ready, number) == Decimal("9.6850")


# --- 7. a grant never outlives what the card can pay ------------------------------------

def test_an_expired_hold_still_holds_the_money_its_call_may_spend(stack_ready, cisco):
    number = card(stack_ready, "0.50")                 # one call at a time (standard)
    first = Call(cisco, number)
    assert granted(first.access(MOBILE)) == 198        # 0.495 reserved
    # the call has not started when its hold expires (KONDGE_HOLD_SECONDS)
    stack_ready.db.run(lambda cur: cur.execute(
        """UPDATE kondge.reservation SET hold_expires_at = now() - interval '1 second'
            WHERE card_id = (SELECT id FROM kondge.card WHERE number = %s)""", (number,)))
    second = Call(cisco, number)
    refused = second.access(MOBILE)
    assert not refused.accepted and refused.h323("h323-return-code") in ("4", "12")
    first.talk(seconds=198)                            # the first call starts late after all
    assert balance(stack_ready, number) == Decimal("0.0050")
    assert "late-start" in cdrs(stack_ready, number)[0]["flags"]


# --- 8. a reused call identity is a new call ----------------------------------------------

def test_a_reused_conf_id_is_a_new_call_and_is_charged(stack_ready, cisco):
    first, second = card(stack_ready), card(stack_ready)
    call = Call(cisco, first)
    granted(call.access(MOBILE))
    call.talk(seconds=60)
    again = Call(cisco, second, conf=call.conf)        # another card, the same h323-conf-id
    granted(again.access(MOBILE))
    again.talk(seconds=60)
    # and a third call under the same ids as the first, with a different talk time
    third = Call(cisco, first, conf=call.conf)
    third.sessions = call.sessions
    granted(third.access(MOBILE))
    third.talk(seconds=120)
    assert balance(stack_ready, first) == Decimal("10.00") - Decimal("0.15") - Decimal("0.30")
    assert balance(stack_ready, second) == Decimal("9.85")
    # a retransmission of the first call's Stop changes nothing
    call.acct("Stop", seconds=60)
    assert balance(stack_ready, first) == Decimal("9.55")
    assert len(cdrs(stack_ready, conf=call.conf.split("=")[1])) == 3
