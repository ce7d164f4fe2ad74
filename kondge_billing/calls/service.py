"""The call path: what a gateway's request means for a card.

Plain requests in (events.py), plain outcomes out; the RADIUS edge
(edge/radius_edge.py) turns them into pairs. Every refusal is a named Refusal.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_UP, Decimal

from ..store import callers, cards, prices
from . import cdrs, pin_guard, sessions
from ..errors import (CardExpired, CardInUse, CardSuspended, CreditLimitReached, DestinationBlocked,
                      InsufficientBalance, InvalidArgument, LoginNotAllowed, MalformedCardNumber,
                      RetriesExceeded, ServiceUnavailable, UnknownCard, WrongPin, ZeroBalance)
from ..store.gateways import Gateway, GatewayDirectory, all_gateways
from ..rating.money import ZERO, Money, MoneyError
from ..rating.numbers import normalise
from ..store.pins import load_key, pin_hash
from .sessions import new_hold_id
from ..rating.engine import allowed_seconds, call_cost, rate_call
from ..identifiers import CARD_NUMBER, PIN, card_number_problem
from .events import AccessRequest, AccountingRecord
from .talk_time import TalkTime, talk_time


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
    #: call_id: the call's key (its identity, '#n' added for a later call under the same ids)
    call_id: str | None = None
    leg: str | None = None
    charge: Decimal | None = None


def call_identity(gateway: Gateway, rec: AccountingRecord) -> tuple[str, bool, list[str]]:
    """(call id, whether it is an h323-conf-id, flags): what makes a call's
    records the same call, as the gateway names it.

    Cisco and Quintum: h323-conf-id. Generic, or a record without one:
    Acct-Unique-Session-Id, else Acct-Session-Id. A record with neither is
    keyed by a digest of its content (retransmissions repeat it), and flagged.
    """
    flags: list[str] = []
    if gateway.dialect != "generic" and rec.conf_id:
        return rec.conf_id, True, flags
    session = rec.unique_session_id or rec.acct_session_id
    if session:
        if gateway.dialect != "generic":
            flags.append("conf-id-missing")
        return session, False, flags
    flags.append("call-id-missing")
    digest = hashlib.sha256(repr((rec.user_name, rec.caller, rec.called, rec.session_time,
                                  rec.setup_time, rec.connect_time)).encode()).hexdigest()
    return "digest:" + digest[:32], False, flags


@dataclass(frozen=True)
class Numbers:
    """A request's numbers through its gateway's numbering rules, once, at
    the edge: international form, digits only (None: not a number)."""

    caller: str | None
    called: str | None
    user: str | None            # User-Name as a caller number (a caller login)


def numbers_of(gateway: Gateway, caller_raw, called_raw, user_name=None) -> Numbers:
    fmt = gateway.number_format
    user = None
    if user_name and user_name.strip() == (caller_raw or "").strip():
        user = normalise(user_name, fmt)
    return Numbers(normalise(caller_raw, fmt), normalise(called_raw, fmt), user)


class Billing:
    """The service the hook, the CLI and the tests call."""

    def __init__(self, db, pin_key: bytes, gateways, max_credit_time: int = 86400,
                 check_digit: str = "luhn", hold_seconds: int = 300,
                 auth_when_db_down: str = "silent", unauthorised_calls: str = "record",
                 unknown_card_code: int = 2, clock=lambda: datetime.now(timezone.utc)):
        self.db = db
        self.pin_key = pin_key
        self.gateways = gateways
        self.max_credit_time = max_credit_time
        self.check_digit = check_digit
        self.hold_seconds = hold_seconds
        #: what an Access-Request gets while the database is unreachable:
        #: "silent" (no answer) or "reject" (code 8)
        self.auth_when_db_down = auth_when_db_down
        #: a call nobody authorised: "record" (CDR flagged no-authorisation,
        #: nothing charged) or "charge" (the card its User-Name names pays)
        self.unauthorised_calls = unauthorised_calls
        #: a card number that is no card: 2, answered as a wrong PIN (nobody
        #: learns which numbers are cards), or 1 (unknown card)
        self.unknown_card_code = unknown_card_code
        self.clock = clock
        #: the access numbers stage 1 logins came in on, as the database
        #: named them: what tells a stage 2 from a stage 1 without it
        self.access_numbers: set[str] = set()

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
                   auth_when_db_down=settings.auth_when_db_down,
                   unauthorised_calls=settings.unauthorised_calls,
                   unknown_card_code=settings.unknown_card_code)

    # --- Access-Request --------------------------------------------------
    def authorize(self, gateway: Gateway, req: AccessRequest) -> Login | Grant:
        now = self.clock()
        call_id = req.conf_id or new_hold_id()
        nums = numbers_of(gateway, req.caller_raw, req.called_raw)
        # a Called-Station-Id that is no number still makes a stage 2 (refused below)
        called = nums.called or (req.called_raw or "").strip()[:64] or None
        if req.is_caller_login:
            card, number = self._caller_card(gateway, req, nums, called, call_id, now)
        else:
            card, number = self._card_by_number(gateway, req, nums, called, call_id, now)
            if card.access_login == "caller":
                raise LoginNotAllowed(f"access number {card.access_number} takes caller "
                                      f"logins only")
        if card.status != "active":
            raise CardSuspended(f"card {number} is {card.status}")
        if card.expires_at is not None and card.expires_at <= now:
            raise CardExpired(f"card {number} expired {card.expires_at:%Y-%m-%d %H:%M}")
        self._check_room(number, card, card.available)
        if card.stage == "destination":
            return self._grant(number, gateway, call_id, nums, card, now, called)
        if card.access_number and req.stage is None:
            # the database took it for an access number (a login the gateway
            # named by Service-Type may have called any number: not learned)
            self.access_numbers.add(card.access_number)
        if not req.is_caller_login:
            self._auto_bind(card, nums.caller, gateway, call_id)
        return Login(card.available.amount, card.available.currency, card.language_for_call,
                     card.billing, max(-card.balance, ZERO), card.access_prompt_id)

    def continues_call(self, gateway: Gateway, req: AccessRequest) -> bool:
        """Whether this Access-Request is the stage 2 of a call, told without
        the database: the stage the gateway names (Service-Type), else a
        number called that is none of the access numbers logins came in on.
        Overload control never turns such a request away: the caller's stage
        1 was accepted, and refusing now would waste it. A process that has
        served no login yet (just started) cannot tell, and treats the
        request as a stage 1."""
        named = req.stage
        if named is not None:
            return named == "destination"
        if not self.access_numbers:
            return False
        called = numbers_of(gateway, None, req.called_raw).called
        return called is not None and called not in self.access_numbers

    def _card_by_number(self, gateway, req, nums, called, call_id, now):
        number = (req.user_name or "").strip()
        problem = card_number_problem(number, self.check_digit)
        if problem:
            raise MalformedCardNumber(problem)
        pin = req.pin or ""
        # the database compares the keyed hash: the PIN hashes never leave it
        hashed = pin_hash(self.pin_key, number, pin) if PIN.match(pin) else None
        card = self.db.run(lambda cur: cards.for_call(
            cur, number, called, nums.caller, gateway.id, req.conf_id, call_id, now,
            caller_number=nums.caller, pin_hash=hashed, stage=req.stage,
            gateway_name=gateway.name))
        if isinstance(card, cards.CallRefused):
            raise self._refusal(card, number, nums.caller, gateway)
        return card, number

    def _refusal(self, refused, number, caller, gateway):
        """The answer to a card-number login the database refused."""
        if refused.refusal == "wrong-pin":
            return WrongPin(f"wrong PIN for card {number}")
        if refused.refusal == "unknown":
            unknown = UnknownCard if self.unknown_card_code == 1 else WrongPin
            return unknown(f"no card {number}")
        whose = {"card-locked": f"card number {number}",
                 "caller-locked": f"caller {caller}",
                 "gateway-locked": f"gateway {gateway.name}"}[refused.refusal]
        until = ("until 'kondge cards unlock'" if refused.until == "infinity"
                 else f"until {refused.until}")
        return RetriesExceeded(f"too many wrong PINs: {whose} is locked {until} "
                               f"(login of card number {number})")

    def _caller_card(self, gateway, req, nums, called, call_id, now):
        """A caller login: the card the caller number is bound to, no PIN.

        Refused with code 1 (so that the IVR asks for a card number and PIN,
        as Quintum's IVR type 5 does) when the number is bound to no card or
        the access number takes card logins only."""
        if nums.caller is None:
            raise UnknownCard(f"caller login without a usable caller number "
                              f"({(req.caller_raw or '')[:32]!r})")
        card = self.db.run(lambda cur: cards.for_call(
            cur, None, called, nums.caller, gateway.id, req.conf_id, call_id, now,
            caller_number=nums.caller, stage=req.stage, gateway_name=gateway.name))
        if card is None:
            raise UnknownCard(f"caller {nums.caller} is bound to no card")
        if card.access_login == "card":
            raise UnknownCard(f"access number {card.access_number} takes card logins only")
        return card, card.number

    def _auto_bind(self, card, caller, gateway, call_id):
        """After a card login, bind the caller's number if the category says so."""
        if not (card.auto_bind and caller and card.caller_card_id is None
                and card.callers_bound < card.max_callers):
            return
        # bound elsewhere meanwhile: the function binds nothing, the login stands
        self.db.run(lambda cur: callers.auto_bind(cur, card.id, caller, gateway.id, call_id))

    @staticmethod
    def _check_room(number, card, available: Money):
        if available.positive:
            return
        if card.active_calls >= card.max_calls:
            raise CardInUse(f"card {number} has {card.active_calls} call(s) up holding "
                            f"{card.held}; its limit is {card.max_calls}")
        held = f" ({card.held} held by live calls)" if card.held else ""
        if card.billing == "postpaid":
            raise CreditLimitReached(f"card {number} is at its credit limit{held}")
        raise ZeroBalance(f"card {number} has {available.amount} {available.currency} "
                          f"available{held}")

    def _grant(self, number, gateway, call_id, nums, card, now, called) -> Grant:
        destination = nums.called
        if destination is None:
            raise InvalidArgument(f"destination {(called or '')[:40]!r} is not a phone number")
        rating = card.rating
        if rating is None:
            raise DestinationBlocked(f"no rate for {destination} on card {number}'s tariff")
        try:
            available = card.available.in_currency(rating.currency)
        except MoneyError:
            raise ServiceUnavailable(f"tariff is in {rating.currency}, card {number} in "
                                     f"{card.currency}") from None
        if card.active_calls >= card.max_calls:
            raise CardInUse(f"card {number} has {card.active_calls} call(s) up, "
                            f"its limit is {card.max_calls}")
        cap = min(self.max_credit_time, card.max_call_seconds or self.max_credit_time)
        # Another call on the card may take part of the balance between the
        # look-up and the hold: the hold re-checks under the card's row lock
        # and says what is left; a few tries settle it.
        for _ in range(3):
            try:
                seconds = allowed_seconds(rating, now, available.amount, cap)
                amount = call_cost(rating, now, seconds) if seconds else ZERO
            except (ArithmeticError, ValueError) as exc:
                raise DestinationBlocked(f"the rate for {destination} on card {number}'s "
                                         f"tariff cannot be computed ({exc})") from None
            if seconds == 0:
                self._check_room(number, card, available)
                raise InsufficientBalance(
                    f"card {number}: {available} available is below the "
                    f"first block to {destination}")
            held = self.db.run(lambda cur: sessions.hold(
                cur, card.id, gateway.id, call_id, nums.caller, destination,
                card.access_number, card.category, card.price, amount, seconds,
                self.hold_seconds))
            if held["outcome"] == "held":
                return Grant(seconds, available.amount, available.currency,
                             card.language_for_call,
                             rating.prefix)
            if held["outcome"] == "in-use":
                raise CardInUse(f"card {number} has {held['active_calls']} call(s) up, "
                                f"its limit is {card.max_calls}")
            if held["outcome"] == "unproven":       # its login vanished meanwhile
                raise ServiceUnavailable(f"card {number}: no login of call {call_id} on "
                                         f"{gateway.name} to hold it by; try again")
            available = Money(held["available"], available.currency)
        raise InsufficientBalance(f"card {number}: the balance kept changing; try again")

    # --- Accounting-Request ----------------------------------------------
    def account(self, gateway: Gateway, rec: AccountingRecord) -> Recorded:
        if rec.status in ("on", "off", "unknown"):
            return Recorded("ignored")
        call_id, has_conf, flags = call_identity(gateway, rec)
        nums = numbers_of(gateway, rec.caller_raw, rec.called_raw, rec.user_name)
        user = rec.user_name
        named_card = (user if user and CARD_NUMBER.match(user) and nums.user is None
                      else None)
        row = self.db.run(lambda cur: cdrs.account(
            cur, status=rec.status, gateway_id=gateway.id, billed_leg=gateway.billed_leg,
            call_id=call_id, has_conf=has_conf, origin=rec.call_origin,
            call_type=rec.call_type, acct_session_id=rec.acct_session_id or "",
            user_name=user, card_number=named_card, caller_number=nums.user,
            caller=nums.caller, called=nums.called, setup=rec.setup_time,
            connect=rec.connect_time, disconnect=rec.disconnect_time,
            session_time=rec.session_time, cause=rec.disconnect_cause,
            flags=list(rec.flags) + flags, digest=rec.digest, gateway_name=gateway.name))
        outcome = row["outcome"]
        if outcome in ("recorded", "duplicate"):
            return Recorded(outcome, row["call_key"], row["leg"])
        received = rec.received_at or self.clock()
        if outcome == "correct":
            return self._correct(gateway, rec, row, received)
        return self._settle(gateway, rec, row, call_id, nums, received)

    def _talk(self, gateway, rec, row, received) -> TalkTime:
        return talk_time(
            reported=rec.session_time, connect=rec.connect_time,
            disconnect=rec.disconnect_time, start_connect=row["start_connect"],
            start_received=row["start_received_at"], received=received,
            authorised_at=row["authorised_at"], granted=row["granted_seconds"],
            start_marks_answer=gateway.start_marks_answer)

    def _settle(self, gateway, rec, row, call_id, nums, received) -> Recorded:
        """A billed Stop: its talk time, its price, and the charge (radius_settle)."""
        talk = self._talk(gateway, rec, row, received)
        flags = list(row["flags"]) + list(talk.flags)
        authorised = row["outcome"] == "price"
        priced = price_call(row["rating"], talk, row["authorised_at"], row["hold_amount"],
                            row["granted_seconds"], flags)
        charge = authorised or (self.unauthorised_calls == "charge"
                                and row["card_id"] is not None)
        ids = priced.ids
        done = self.db.run(lambda cur: cdrs.settle(
            cur, gateway_id=gateway.id, call_key=row["call_key"], call_id=call_id,
            leg=row["leg"], acct_session_id=rec.acct_session_id or "",
            hold_id=row["hold_id"], card_id=row["card_id"], charge=charge,
            user_name=rec.user_name, caller=nums.caller, called=nums.called,
            setup=rec.setup_time, connect=talk.start,
            disconnect=rec.disconnect_time or received, session_time=rec.session_time,
            duration=talk.seconds, cause=rec.disconnect_cause, flags=flags, digest=rec.digest,
            destination=row["destination"], access_number=row["access_number"],
            category=row["category"], version_id=ids.get("version_id"),
            plan_id=ids.get("plan_id"), destination_id=ids.get("destination_id"),
            rate_prefix=ids.get("prefix"), price=priced.per_minute, cost=priced.cost,
            currency=priced.currency or row["currency"], granted=row["granted_seconds"],
            authorised_at=row["authorised_at"]))
        return Recorded(done["outcome"], row["call_key"], row["leg"], done["charge"])

    def _correct(self, gateway, rec, row, received) -> Recorded:
        """The real Stop of a call the sweep closed: charged right, once."""
        talk = self._talk(gateway, rec, row, received)
        flags = list(talk.flags)
        priced = price_call(row["rating"], talk, row["authorised_at"], None,
                            row["granted_seconds"], flags)
        done = self.db.run(lambda cur: cdrs.correct(
            cur, cdr_id=row["cdr_id"], leg=row["leg"], acct_session_id=rec.acct_session_id or "",
            disconnect=rec.disconnect_time or received, session_time=rec.session_time,
            duration=talk.seconds, cause=rec.disconnect_cause, digest=rec.digest,
            cost=priced.cost, flags=flags))
        return Recorded(done["outcome"], row["call_key"], row["leg"], done["charge"])

    def park(self, pairs, error: str):
        """Keep an accounting record that could not be processed, whole."""
        kept = [[str(item[0]), str(item[-1])] for item in pairs or ()
                if isinstance(item, tuple) and len(item) >= 2]
        self.db.run(lambda cur: cdrs.park(cur, kept, error))

    # --- housekeeping ----------------------------------------------------
    def sweep(self, grace_seconds: int) -> dict:
        """Lapse holds whose call never started; close live calls whose Stop is lost.

        A lost Stop is charged for the talk time the last Interim-Update
        reported, or, with no Interim-Update, for the whole time granted
        (the most the gateway could have let the call run), at the price it
        was authorised with. Its CDR is flagged stop-missing; the real Stop,
        if it comes later, corrects it (radius_correct). Counters of wrong
        PINs that no longer count are forgotten (pin_guard.forget).
        """
        lapsed = self.db.run(sessions.lapse_holds)
        self.db.run(pin_guard.forget)
        closed = 0
        now = self.clock()
        for row in self.db.run(lambda cur: sessions.overdue(cur, grace_seconds)):
            gateway = row["gateway"]
            seconds = row["interim_seconds"]
            flag = "stop-missing-charged-interim"
            if seconds is None:
                seconds, flag = row["granted_seconds"], "stop-missing-charged-granted"
            flags = ["stop-missing", flag]
            talk = TalkTime(seconds, row["started_at"], ())
            priced = price_call(row["rating"], talk, row["created_at"], row["amount"],
                                row["granted_seconds"], flags)
            ids = priced.ids
            self.db.run(lambda cur: cdrs.settle(
                cur, gateway_id=gateway.id, call_key=row["call_key"], call_id=row["call_id"],
                leg=row["leg"] or (gateway.billed_leg if gateway.dialect != "generic"
                                   else "session"),
                acct_session_id=row["acct_session_id"] or "", hold_id=row["id"],
                card_id=row["card_id"], charge=True, user_name=None, caller=row["caller"],
                called=row["destination"], setup=None, connect=row["started_at"],
                disconnect=now, session_time=None, duration=seconds, cause=None,
                flags=flags, digest="sweep", destination=row["destination"],
                access_number=row["access_number"], category=row["category"],
                version_id=ids.get("version_id"), plan_id=ids.get("plan_id"),
                destination_id=ids.get("destination_id"), rate_prefix=ids.get("prefix"),
                price=priced.per_minute, cost=priced.cost,
                currency=priced.currency or row["currency"],
                granted=row["granted_seconds"], authorised_at=row["created_at"]))
            closed += 1
        return {"holds_lapsed": lapsed, "sessions_closed": closed}


@dataclass(frozen=True)
class Priced:
    cost: Decimal
    currency: str | None
    per_minute: Decimal | None
    ids: dict                   # what priced it: version_id, plan_id, destination_id, prefix


def price_call(rating: prices.CallRating, talk: TalkTime, authorised_at, hold_amount, granted,
               flags: list) -> Priced:
    """The cost of a call that talked `talk.seconds` from `talk.start`, by the
    rating it was authorised with; flags say when it could not be done as usual.

    A rating that cannot price these times (a start the rates cannot place,
    amounts beyond the engine) is tried again at the moment of the
    authorisation (flagged priced-at-authorisation); if that fails too, the
    call pays its share of the amount its hold reserved, pro rata, rounded
    up to the cent's hundredth (priced-from-grant). No rating at all: cost
    0, flagged unrated (a call that talked is never free without a flag)."""
    ctx = rating.context
    if ctx is None:
        if talk.seconds > 0:
            if hold_amount is not None and granted:
                flags.append("priced-from-grant")
                return Priced(_pro_rata(hold_amount, talk.seconds, granted), None, None, {})
            flags.append("unrated")
        return Priced(ZERO, None, None, {})
    ids = rating.ids
    for start, flag in ((talk.start, None), (authorised_at, "priced-at-authorisation")):
        if start is None:
            continue
        try:
            breakdown = rate_call(ctx, start, talk.seconds, explain=False)
        except (ArithmeticError, ValueError, OverflowError):
            continue
        if flag:
            flags.append(flag)
        per_minute = breakdown.rate.steps[0].per_minute if breakdown.rate else None
        return Priced(breakdown.cost, ctx.currency, per_minute, ids)
    if hold_amount is not None and granted:
        flags.append("priced-from-grant")
        return Priced(_pro_rata(hold_amount, talk.seconds, granted), ctx.currency, None, ids)
    flags.append("unrated")
    return Priced(ZERO, ctx.currency, None, ids)


def _pro_rata(amount: Decimal, seconds: int, granted: int) -> Decimal:
    share = amount * min(seconds, granted) / granted
    return share.quantize(Decimal("0.0001"), rounding=ROUND_UP)
