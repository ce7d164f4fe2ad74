"""The call path: what a gateway's request means for a card.

Plain requests in (request.py), plain outcomes out; the RADIUS edge
(radius_edge.py) turns them into pairs. Every refusal is a named Refusal.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from . import attrs, callers, calls, cards, sessions
from .errors import (CardExpired, CardInUse, CardSuspended, CreditLimitReached,
                     DestinationBlocked, InsufficientBalance, InvalidArgument, LoginNotAllowed,
                     MalformedCardNumber, ServiceUnavailable, UnknownCard, WrongPin,
                     ZeroBalance)
from .gateways import Gateway, GatewayDirectory, all_gateways
from .money import ZERO
from .numbers import normalise
from .pins import load_key, pin_hash
from .sessions import new_hold_id
from .tariffs.codec import context_from_json
from .tariffs.engine import allowed_seconds, call_cost, rate_call
from .request import (CARD_NUMBER, PIN, AccessRequest, AccountingRecord,
                      card_number_problem)


@dataclass(frozen=True)
class Login:
    """Stage 1 accepted: the card is good; announce its balance.

    `balance` is what may be spent now (for a postpaid account: the credit
    remaining); `amount_due` is what a postpaid account owes."""

    balance: Decimal
    currency: str
    language: str
    billing: str = "prepaid"
    amount_due: Decimal = ZERO
    prompt_id: int | None = None


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

    outcome: str                  # recorded | charged | corrected | duplicate | ignored
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
                 check_digit: str = "luhn", hold_seconds: int = 300,
                 auth_when_db_down: str = "silent",
                 clock=lambda: datetime.now(timezone.utc)):
        self.db = db
        self.pin_key = pin_key
        self.gateways = gateways
        self.max_credit_time = max_credit_time
        self.check_digit = check_digit
        self.hold_seconds = hold_seconds
        #: what an Access-Request gets while the database is unreachable:
        #: "silent" (no answer) or "reject" (code 8)
        self.auth_when_db_down = auth_when_db_down
        self.clock = clock

    @classmethod
    def from_settings(cls, settings, db, directory=None) -> "Billing":
        """The service as configured (config.Settings), on `db`; the gateways
        come from `directory` (by default the gateway table, read from `db`)."""
        if directory is None:
            directory = GatewayDirectory(lambda: db.run(all_gateways))
        return cls(db, load_key(settings.pin_key_file), directory,
                   max_credit_time=settings.max_credit_time,
                   check_digit=settings.card_check_digit,
                   hold_seconds=settings.hold_seconds,
                   auth_when_db_down=settings.auth_when_db_down)

    # --- Access-Request --------------------------------------------------
    def authorize(self, gateway: Gateway, req: AccessRequest) -> Login | Grant:
        now = self.clock()
        call_id = req.conf_id or new_hold_id()
        caller = normalise(req.caller_raw, gateway.number_format)
        if req.is_caller_login:
            card, number = self._caller_card(gateway, req, caller, call_id, now)
        else:
            card, number = self._card_by_number(gateway, req, caller, call_id, now)
            if card.access_login == "caller":
                raise LoginNotAllowed(f"access number {card.access_number} takes caller "
                                      f"logins only")
        if card.status != "active":
            raise CardSuspended(f"card {number} is {card.status}")
        if card.expires_at is not None and card.expires_at <= now:
            raise CardExpired(f"card {number} expired {card.expires_at:%Y-%m-%d %H:%M}")
        self._check_room(number, card, card.available)
        if is_destination_stage(req, card.called_is_access_number):
            return self._grant(number, gateway, call_id, req, card, now)
        if not req.is_caller_login:
            self._auto_bind(card, caller)
        return Login(card.available, card.currency, card.language_for_call, card.billing,
                     max(-card.balance, ZERO), card.access_prompt_id)

    def _card_by_number(self, gateway, req, caller, call_id, now):
        number = (req.user_name or "").strip()
        problem = card_number_problem(number, self.check_digit)
        if problem:
            raise MalformedCardNumber(problem)
        pin = req.pin or ""
        # the database compares the keyed hash: the PIN hashes never leave it
        hashed = pin_hash(self.pin_key, number, pin) if PIN.match(pin) else None
        card = self.db.run(lambda cur: cards.for_call(
            cur, number, req.called, req.caller, gateway.id, req.conf_id, call_id, now,
            caller_number=caller, pin_hash=hashed))
        if card is None:
            raise UnknownCard(f"no card {number}")
        if not card.pin_ok:
            raise WrongPin(f"wrong PIN for card {number}")
        return card, number

    def _caller_card(self, gateway, req, caller, call_id, now):
        """A caller login: the card the caller number is bound to, no PIN.

        Refused with code 1 (so that the IVR asks for a card number and PIN,
        as Quintum's IVR type 5 does) when the number is bound to no card or
        the access number takes card logins only."""
        if caller is None:
            raise UnknownCard(f"caller login without a usable caller number "
                              f"({(req.caller_raw or '')[:32]!r})")
        card = self.db.run(lambda cur: cards.for_call(
            cur, None, req.called, req.caller, gateway.id, req.conf_id, call_id, now,
            caller_number=caller))
        if card is None:
            raise UnknownCard(f"caller {caller} is bound to no card")
        if card.access_login == "card":
            raise UnknownCard(f"access number {card.access_number} takes card logins only")
        return card, card.number

    def _auto_bind(self, card, caller):
        """After a card login, bind the caller's number if the category says so."""
        if not (card.auto_bind and caller and card.caller_card_id is None
                and card.callers_bound < card.max_callers):
            return
        # bound elsewhere meanwhile: the function binds nothing, the login stands
        self.db.run(lambda cur: callers.auto_bind(cur, card.id, caller))

    @staticmethod
    def _check_room(number, card, available):
        if available > ZERO:
            return
        if card.active_calls >= card.max_calls:
            raise CardInUse(f"card {number} has {card.active_calls} call(s) up holding "
                            f"{card.held}; its limit is {card.max_calls}")
        held = f" ({card.held} held by live calls)" if card.held else ""
        if card.billing == "postpaid":
            raise CreditLimitReached(f"card {number} is at its credit limit{held}")
        raise ZeroBalance(f"card {number} has {available} {card.currency} available{held}")

    def _grant(self, number, gateway, call_id, req, card, now) -> Grant:
        if req.called is None:
            raise InvalidArgument(f"destination {req.called_raw[:40]!r} is not a phone number")
        rating = card.rating
        if rating is None:
            raise DestinationBlocked(f"no rate for {req.called} on card {number}'s tariff")
        if rating.currency != card.currency:
            raise ServiceUnavailable(f"tariff is in {rating.currency}, card {number} in "
                                     f"{card.currency}")
        if card.active_calls >= card.max_calls:
            raise CardInUse(f"card {number} has {card.active_calls} call(s) up, "
                            f"its limit is {card.max_calls}")
        cap = min(self.max_credit_time, card.max_call_seconds or self.max_credit_time)
        available = card.available
        # Another call on the card may take part of the balance between the
        # look-up and the hold: the hold re-checks under the card's row lock
        # and says what is left; a few tries settle it.
        for _ in range(3):
            seconds = allowed_seconds(rating, now, available, cap)
            if seconds == 0:
                self._check_room(number, card, available)
                raise InsufficientBalance(
                    f"card {number}: {available} {card.currency} available is below the "
                    f"first block to {req.called} ({call_cost(rating, now, 1)})")
            amount = call_cost(rating, now, seconds)
            held = self.db.run(lambda cur: sessions.hold(
                cur, card.id, gateway.id, call_id, req.caller, req.called, amount, seconds,
                self.hold_seconds))
            if held["outcome"] == "held":
                return Grant(seconds, available, card.currency, card.language_for_call,
                             rating.prefix)
            if held["outcome"] == "in-use":
                raise CardInUse(f"card {number} has {held['active_calls']} call(s) up, "
                                f"its limit is {card.max_calls}")
            available = held["available"]
        raise InsufficientBalance(f"card {number}: the balance kept changing; try again")

    # --- Accounting-Request ----------------------------------------------
    def account(self, gateway: Gateway, rec: AccountingRecord) -> Recorded:
        if rec.status in ("on", "off", "unknown"):
            return Recorded("ignored")
        call_id, leg, flags = call_identity(gateway, rec)
        return self._record(gateway, rec, call_id, leg, list(rec.flags) + flags)

    def _record(self, gateway, rec, call_id, leg, flags) -> Recorded:
        """Store one leg's record; the billed leg's Stop is priced and charged."""
        billed = leg in (gateway.billed_leg, "session")
        number = rec.user_name if rec.user_name and CARD_NUMBER.match(rec.user_name) else None
        values = dict(
            status=rec.status, gateway_id=gateway.id, call_id=call_id, leg=leg,
            acct_session_id=rec.acct_session_id, user_name=rec.user_name,
            caller=rec.caller, called=rec.called, setup=rec.setup_time,
            connect=rec.connect_time, disconnect=rec.disconnect_time,
            session_time=rec.session_time, cause=rec.disconnect_cause, flags=flags,
            bill=billed, card_number=number, destination=rec.called, cost=ZERO,
            currency=None, tariff_id=None, rate_prefix=None, price=None)
        if billed and rec.status == "stop":
            values.update(self._price(gateway, call_id, number, rec, flags))
        row = self.db.run(lambda cur: calls.record_leg(cur, **values))
        return Recorded(row["outcome"], call_id, leg, row["charge"])

    def park(self, pairs, error: str):
        """Keep an accounting record that could not be processed, whole."""
        kept = [[str(item[0]), str(item[-1])] for item in pairs or ()
                if isinstance(item, tuple) and len(item) >= 2]
        self.db.run(lambda cur: calls.park(cur, kept, error))

    # --- housekeeping ----------------------------------------------------
    def sweep(self, grace_seconds: int) -> dict:
        """Drop holds that never started; close live calls whose Stop is lost.

        A lost Stop is charged for the talk time the last Interim-Update
        reported, or, with no Interim-Update, for the whole time granted
        (the most the gateway could have let the call run). Its CDR is
        flagged stop-missing.
        """
        dropped = self.db.run(sessions.drop_expired_holds)
        closed = 0
        for row in self.db.run(lambda cur: sessions.overdue(cur, grace_seconds)):
            gateway = row["gateway"]
            seconds = row["interim_seconds"]
            flag = "stop-missing-charged-interim"
            if seconds is None:
                seconds, flag = row["granted_seconds"], "stop-missing-charged-granted"
            rec = AccountingRecord(
                gateway_address=gateway.address, status="stop", acct_session_id=None,
                unique_session_id=None, conf_id=None, call_origin=None,
                user_name=row["card_number"], caller=row["caller"], called=row["destination"],
                session_time=seconds, setup_time=None, connect_time=row["started_at"],
                disconnect_time=self.clock(), disconnect_cause=None,
                flags=("stop-missing", flag))
            # the billed leg's Stop, as the gateway would have sent it
            leg = gateway.billed_leg if gateway.dialect != "generic" else "session"
            self._record(gateway, rec, row["call_id"], leg, list(rec.flags))
            closed += 1
        return {"holds_dropped": dropped, "sessions_closed": closed}

    def _price(self, gateway, call_id, number, rec, flags) -> dict:
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
