"""Money: Decimal only, rounded once, with a named rounding mode.

Floats are refused outright: a float has already lost the exact value.
"""

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
