"""The call path: what a gateway's request means for a card.

Plain requests in (request.py), plain outcomes out; the RADIUS edge
(radius_edge.py) turns them into pairs. Every refusal is a named Refusal.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from . import attrs, calls, cards
from .errors import (CardExpired, CardSuspended, DestinationBlocked, InsufficientBalance,
                     InvalidArgument, MalformedCardNumber, ServiceUnavailable, UnknownCard,
                     UnknownGateway, WrongPin, ZeroBalance)
from .gateways import Gateway
from .money import ZERO
from .pins import pin_matches
from .tariffs.codec import context_from_json
from .tariffs.engine import allowed_seconds, call_cost, rate_call
from .request import (CARD_NUMBER, PIN, AccessRequest, AccountingRecord,
                      card_number_problem)


@dataclass(frozen=True)
class Login:
    """Stage 1 accepted: the card is good; announce its balance."""

    balance: Decimal
    currency: str
    language: str


@dataclass(frozen=True)
class Grant:
    """Stage 2 accepted: the call may last `seconds`."""

    seconds: int
    balance: Decimal
    currency: str
    language: str
    rate_prefix: str


@dataclass(frozen=True)
class Recorded:
    """An accounting record stored (or recognised as a repeat)."""

    outcome: str                  # recorded | charged | duplicate | ignored
    call_id: str | None = None
    leg: str | None = None
    charge: Decimal | None = None


def is_destination_stage(req: AccessRequest, called_is_access_number: bool) -> bool:
    """Stage 2 (destination authorisation) or stage 1 (card login)?

    Service-Type names the stage where the gateway sends it
    (Authenticate-Only = login, Outbound-User = destination). Otherwise a
    request without a Called-Station-Id, or with one of our access numbers
    in it, is a login or balance query; any other number is a destination.
    """
    if req.service_type == attrs.SERVICE_AUTHENTICATE_ONLY:
        return False
    if req.service_type == attrs.SERVICE_OUTBOUND:
        return True
    if not (req.called_raw or "").strip():
        return False
    return not called_is_access_number


def call_identity(gateway: Gateway, rec: AccountingRecord) -> tuple[str, str, list[str]]:
    """(call id, leg, flags): what makes a call's records the same call.

    Cisco and Quintum: h323-conf-id and the leg (answer / originate).
    Generic: Acct-Unique-Session-Id, else Acct-Session-Id. A record with
    neither is keyed by a digest of its content (retransmissions repeat it),
    and flagged.
    """
    flags: list[str] = []
    if gateway.dialect != "generic" and rec.conf_id:
        leg = rec.call_origin
        if leg is None:
            flags.append("call-origin-missing")
            leg = "unknown"
        return rec.conf_id, leg, flags
    session = rec.unique_session_id or rec.acct_session_id
    if session:
        if gateway.dialect != "generic":
            flags.append("conf-id-missing")
        return session, "session", flags
    flags.append("call-id-missing")
    digest = hashlib.sha256(repr((rec.user_name, rec.caller, rec.called, rec.session_time,
                                  rec.setup_time, rec.connect_time)).encode()).hexdigest()
    return "digest:" + digest[:32], "session", flags


class Billing:
    """The service the hook, the CLI and the tests call."""

    def __init__(self, db, pin_key: bytes, gateways, max_credit_time: int = 86400,
                 check_digit: str = "luhn", clock=lambda: datetime.now(timezone.utc)):
        self.db = db
        self.pin_key = pin_key
        self.gateways = gateways
        self.max_credit_time = max_credit_time
        self.check_digit = check_digit
        self.clock = clock

    # --- Access-Request --------------------------------------------------
    def authorize(self, req: AccessRequest) -> Login | Grant:
        number = (req.user_name or "").strip()
        problem = card_number_problem(number, self.check_digit)
        if problem:
            raise MalformedCardNumber(problem)
        now = self.clock()
        card = self.db.run(lambda cur: cards.for_call(
            cur, number, req.called, req.caller, self._gateway_id(req), req.conf_id, now))
        if card is None:
            raise UnknownCard(f"no card {number}")
        pin = req.pin or ""
        if not PIN.match(pin) or not pin_matches(self.pin_key, number, pin, card.pin_hash):
            raise WrongPin(f"wrong PIN for card {number}")
        if card.status != "active":
            raise CardSuspended(f"card {number} is {card.status}")
        if card.expires_at is not None and card.expires_at <= self.clock():
            raise CardExpired(f"card {number} expired {card.expires_at:%Y-%m-%d %H:%M}")
        if card.balance <= ZERO:
            raise ZeroBalance(f"card {number} has {card.balance} {card.currency}")
        if not is_destination_stage(req, card.called_is_access_number):
            return Login(card.balance, card.currency, card.language)
        return self._grant(number, req, card, now)

    def _gateway_id(self, req) -> int | None:
        try:
            return self.gateways.get(req.gateway_address).id
        except UnknownGateway:
            return None

    def _grant(self, number, req, card, now, balance=None) -> Grant:
        """The time the available `balance` (default: the card's) pays for, from `now`."""
        balance = card.balance if balance is None else balance
        if req.called is None:
            raise InvalidArgument(f"destination {req.called_raw[:40]!r} is not a phone number")
        rating = card.rating
        if rating is None:
            raise DestinationBlocked(f"no rate for {req.called} on card {number}'s tariff")
        if rating.currency != card.currency:
            raise ServiceUnavailable(f"tariff is in {rating.currency}, card {number} in "
                                     f"{card.currency}")
        seconds = allowed_seconds(rating, now, balance, self.max_credit_time)
        if seconds == 0:
            raise InsufficientBalance(
                f"card {number}: {balance} {card.currency} is below the first block "
                f"to {req.called} ({call_cost(rating, now, 1)})")
        return Grant(seconds, card.balance, card.currency, card.language, rating.prefix)

    # --- Accounting-Request ----------------------------------------------
    def account(self, gateway: Gateway, rec: AccountingRecord) -> Recorded:
        if rec.status in ("on", "off", "unknown"):
            return Recorded("ignored")
        call_id, leg, flags = call_identity(gateway, rec)
        flags = list(rec.flags) + flags
        billed = rec.status == "stop" and leg in (gateway.billed_leg, "session")
        values = dict(
            status=rec.status, gateway_id=gateway.id, call_id=call_id, leg=leg,
            acct_session_id=rec.acct_session_id, user_name=rec.user_name,
            caller=rec.caller, called=rec.called, setup=rec.setup_time,
            connect=rec.connect_time, disconnect=rec.disconnect_time,
            session_time=rec.session_time, cause=rec.disconnect_cause, flags=flags,
            bill=billed, card_number=None, destination=rec.called, cost=ZERO,
            currency=None, tariff_id=None, rate_prefix=None, price=None)
        if billed:
            values.update(self._price(gateway, call_id, rec, flags))

        def work(cur):
            return calls.record_leg(cur, **values)

        row = self.db.run(work)
        return Recorded(row["outcome"], call_id, leg, row["charge"])

    def _price(self, gateway, call_id, rec, flags) -> dict:
        number = rec.user_name if rec.user_name and CARD_NUMBER.match(rec.user_name) else None
        start = rec.connect_time or rec.setup_time or self.clock()
        found = self.db.run(lambda cur: calls.rate_for_stop(
            cur, gateway.id, call_id, number, rec.called, rec.caller, start))
        result = {"card_number": found["number"], "currency": found["currency"]}
        seconds = rec.session_time or 0
        rating = context_from_json(found["rating"])
        if rating is None:
            if seconds > 0:
                flags.append("unrated")
            return result
        priced = rate_call(rating, start, seconds, explain=False)
        result.update(cost=priced.cost, tariff_id=rating.version_id, rate_prefix=rating.prefix,
                      price=priced.rate.steps[0].per_minute if priced.rate else None,
                      currency=rating.currency)
        return result
