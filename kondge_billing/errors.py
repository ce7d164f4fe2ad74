"""Named outcomes of the call path and the h323 return code each maps to.

A Refusal is a billing answer ("no, because ..."): the hook turns it into an
Access-Reject carrying h323-return-code and a Reply-Message. Infrastructure
trouble is not a refusal: it raises Unavailable, and the gateway gets no
answer so that it retries or turns to its second server.
"""


class Refusal(Exception):
    """A call the card may not make. `code` is Cisco's h323-return-code."""

    code = 11
    message = "invalid argument"

    def __init__(self, detail: str = ""):
        super().__init__(detail or self.message)
        self.detail = detail or self.message


class UnknownCard(Refusal):
    code, message = 1, "unknown card"


class WrongPin(Refusal):
    code, message = 2, "wrong PIN"


class CardInUse(Refusal):
    code, message = 3, "card in use"


class ZeroBalance(Refusal):
    code, message = 4, "zero balance"


class CardExpired(Refusal):
    code, message = 5, "card expired"


class CreditLimitReached(Refusal):
    code, message = 6, "credit limit reached"


class CardSuspended(Refusal):
    code, message = 7, "card suspended"


class LoginNotAllowed(Refusal):
    code, message = 7, "this access number does not take this kind of login"


class ServiceUnavailable(Refusal):
    code, message = 8, "service not available"


class Overloaded(ServiceUnavailable):
    """Refused at once, without the database, while the server sheds load
    (kondge_billing/edge/overload.py)."""

    message = "service busy, try again later"


class DestinationBlocked(Refusal):
    code, message = 9, "destination not allowed"


class RetriesExceeded(Refusal):
    """Too many wrong PINs for this card number, from this caller number or
    through this gateway (sql/functions/pin_failed.sql): refused without a
    look at the PIN until the lock ends."""

    code, message = 10, "too many wrong PINs, try again later"


class InvalidArgument(Refusal):
    code, message = 11, "invalid argument"


class InsufficientBalance(Refusal):
    code, message = 12, "insufficient balance for this destination"


class MalformedCardNumber(Refusal):
    code, message = 14, "malformed card number"


class Unavailable(Exception):
    """The database cannot be reached: answer nothing, the gateway retries."""


class UnknownGateway(Exception):
    """A packet from an address that is no (longer a) gateway."""


class StackError(RuntimeError):
    """A part of the running service (the PostgreSQL cluster, FreeRADIUS, the
    supervisor) cannot be set up, started or reached; the message says why
    and what to do."""
