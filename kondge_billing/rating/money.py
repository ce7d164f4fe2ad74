"""Money: Decimal only, rounded once, with a named rounding mode.

Floats are refused outright: a float has already lost the exact value.
"""

import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal, InvalidOperation

ROUNDING_MODES = {"up": ROUND_UP, "half-up": ROUND_HALF_UP, "down": ROUND_DOWN}
ZERO = Decimal(0)
_QUANTA = {d: Decimal(1).scaleb(-d) for d in range(9)}       # every `decimals` a tariff allows


class MoneyError(ValueError):
    """A value that is not an amount of money."""


def to_decimal(value) -> Decimal:
    """The one constructor for amounts: from str, int or Decimal."""
    if isinstance(value, float):
        raise MoneyError("money must not be a float; pass a string or Decimal")
    if isinstance(value, bool):
        raise MoneyError("money must not be a bool")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, (int, str)):
        try:
            result = Decimal(value.strip() if isinstance(value, str) else value)
        except InvalidOperation:
            raise MoneyError(f"not an amount: {value!r}") from None
    else:
        raise MoneyError(f"not an amount: {value!r}")
    if not result.is_finite():
        raise MoneyError(f"not a finite amount: {value!r}")
    return result


#: the most digits an operator may give before and after the point
MAX_INTEGER_DIGITS = 12
MAX_DECIMALS = 8
_TYPED = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?", re.ASCII)
TYPED_FORM = (f"a plain decimal such as 10.00: digits, at most {MAX_INTEGER_DIGITS} before "
              f"the point and {MAX_DECIMALS} after it")


def operator_amount(value) -> Decimal:
    """An amount an operator typed: a balance, a face value, a credit limit,
    a top-up, a voucher's value. The one door such amounts come in by.

    A plain decimal: an optional '-', 1 to 12 digits, optionally '.' and 1
    to 8 digits; spaces around it are dropped. No exponent (1e400), no NaN
    or Infinity, no '+', no '_' or thousands separator, no digits of other
    scripts, no negative zero. A Decimal or int is held to the same bounds
    (trailing zeros after the point do not count). Whether a negative amount
    or zero is allowed is the caller's rule."""
    if isinstance(value, (float, bool)) or not isinstance(value, (str, int, Decimal)):
        raise MoneyError(f"not an amount: {_shown(value)}; {TYPED_FORM}")
    text = value.strip() if isinstance(value, str) else _plain_text(value)
    match = _TYPED.fullmatch(text)
    if not match:
        raise MoneyError(f"{_shown(value)} is not {TYPED_FORM} (no exponent, no '+', "
                         "no spaces or separators)")
    sign, whole, fraction = match.groups()
    if len(whole) > MAX_INTEGER_DIGITS:
        raise MoneyError(f"{_shown(value)} has more than {MAX_INTEGER_DIGITS} digits before "
                         "the point")
    if fraction and len(fraction) > MAX_DECIMALS:
        raise MoneyError(f"{_shown(value)} has more than {MAX_DECIMALS} digits after the point")
    amount = Decimal(text)
    if isinstance(value, Decimal) and -MAX_DECIMALS <= value.as_tuple().exponent <= 0:
        amount = value                                  # as it was written: 10.00 stays 10.00
    if sign and not amount:
        raise MoneyError(f"{_shown(value)} is a negative zero; write 0")
    return amount


def _plain_text(number) -> str:
    """A Decimal or int in fixed point, without trailing zeros after the point."""
    if isinstance(number, Decimal) and not number.is_finite():
        return str(number)
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _shown(value) -> str:
    text = repr(str(value) if isinstance(value, Decimal) else value)
    return text if len(text) <= 40 else text[:36] + "...'"


def quantum(decimals: int) -> Decimal:
    """The smallest step of an amount with `decimals` decimals: 1, 0.1, 0.01, ..."""
    step = _QUANTA.get(decimals)
    return step if step is not None else Decimal(1).scaleb(-decimals)


def round_money(amount: Decimal, decimals: int, rounding: str) -> Decimal:
    """Round to the currency's decimals with the tariff's rounding mode."""
    try:
        mode = ROUNDING_MODES[rounding]
    except KeyError:
        raise MoneyError(f"unknown rounding mode {rounding!r}; use one of "
                         f"{', '.join(ROUNDING_MODES)}") from None
    return amount.quantize(quantum(decimals), rounding=mode)


def format_amount(amount: Decimal, decimals: int = 2) -> str:
    """An amount as the gateway announces it: fixed point, no exponent.

    Rounded down, so the balance announced is never more than the card holds.
    """
    return str(amount.quantize(quantum(decimals), rounding=ROUND_DOWN))


@dataclass(frozen=True)
class Money:
    """An amount in a currency: immutable, Decimal only. Amounts of two
    currencies are never added, subtracted or compared: that is an error."""

    amount: Decimal
    currency: str

    def __post_init__(self):
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite():
            raise MoneyError(f"not an amount of money: {self.amount!r}")
        if not (isinstance(self.currency, str) and len(self.currency) == 3
                and self.currency.isalpha() and self.currency.isupper()):
            raise MoneyError(f"not a currency code: {self.currency!r}")

    def same_currency(self, other: "Money") -> "Money":
        """`other`, when it is money in this currency; else MoneyError."""
        if not isinstance(other, Money):
            raise MoneyError(f"{other!r} is not money")
        if other.currency != self.currency:
            raise MoneyError(f"{self.currency} and {other.currency} do not mix")
        return other

    def in_currency(self, currency: str) -> "Money":
        """This amount, when it is in `currency`; else MoneyError."""
        if currency != self.currency:
            raise MoneyError(f"{self.currency} and {currency} do not mix")
        return self

    def __add__(self, other):
        return Money(self.amount + self.same_currency(other).amount, self.currency)

    def __sub__(self, other):
        return Money(self.amount - self.same_currency(other).amount, self.currency)

    def __neg__(self):
        return Money(-self.amount, self.currency)

    def __lt__(self, other):
        return self.amount < self.same_currency(other).amount

    def __le__(self, other):
        return self.amount <= self.same_currency(other).amount

    def __gt__(self, other):
        return self.amount > self.same_currency(other).amount

    def __ge__(self, other):
        return self.amount >= self.same_currency(other).amount

    @property
    def positive(self) -> bool:
        return self.amount > 0

    def announced(self, decimals: int = 2) -> str:
        """As a gateway announces it (rounded down: never more than there is)."""
        return format_amount(self.amount, decimals)

    def __str__(self):
        return f"{self.announced()} {self.currency}"
