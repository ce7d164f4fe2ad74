"""Rating: the cost of a call and the longest call a balance allows.

Pure functions on Decimal: no clock, no database. This is the simple engine
(one rate per destination prefix, one connect charge, initial block and
increment per tariff); the tariff engine replaces it behind the same two
functions.

Cost of a call of T seconds (T > 0):
    billed(T) = initial block, then whole increments:
                initial + ceil((T - initial) / increment) * increment
    cost(T)   = round(connect + price_per_minute * billed(T) / 60)
rounded once, here, to the tariff's decimals with its rounding mode.
An unanswered call (T = 0) costs nothing.
"""

from dataclasses import dataclass
from decimal import Decimal

from .money import ZERO, round_money, to_decimal

MAX_DESTINATION_DIGITS = 32


@dataclass(frozen=True)
class Rate:
    """The price of calls to one destination under one tariff."""

    tariff_id: int
    prefix: str
    price_per_minute: Decimal
    connect_charge: Decimal
    initial_block: int
    increment: int
    currency: str
    decimals: int
    rounding: str

    def __post_init__(self):
        for name in ("price_per_minute", "connect_charge"):
            object.__setattr__(self, name, to_decimal(getattr(self, name)))
        if self.initial_block <= 0 or self.increment <= 0:
            raise ValueError("initial block and increment must be positive")
        if self.price_per_minute < 0 or self.connect_charge < 0:
            raise ValueError("prices must not be negative")


def prefixes_of(number: str) -> list[str]:
    """Every prefix of a destination, longest first (for the rate lookup)."""
    return [number[:n] for n in range(len(number), 0, -1)]


def billed_seconds(rate: Rate, seconds: int) -> int:
    if seconds <= 0:
        return 0
    if seconds <= rate.initial_block:
        return rate.initial_block
    steps = -(-(seconds - rate.initial_block) // rate.increment)
    return rate.initial_block + steps * rate.increment


def call_cost(rate: Rate, seconds: int) -> Decimal:
    """What a call of `seconds` talk time costs."""
    billed = billed_seconds(rate, seconds)
    if billed == 0:
        return round_money(ZERO, rate.decimals, rate.rounding)
    raw = rate.connect_charge + rate.price_per_minute * billed / 60
    return round_money(raw, rate.decimals, rate.rounding)


def allowed_seconds(rate: Rate, balance: Decimal, cap: int) -> int:
    """The largest whole T <= cap with call_cost(T) <= balance (0 if none).

    cost is constant between the ends of blocks, so T is always the end of
    a block: the initial block or initial + k increments. The largest k is
    found by a bounded binary search on the exact cost function, so no
    rounding of an estimate can grant a second too many.
    """
    balance = to_decimal(balance)
    if call_cost(rate, 1) > balance:
        return 0
    if rate.price_per_minute == 0:
        return cap

    def fits(k: int) -> bool:
        return call_cost(rate, rate.initial_block + k * rate.increment) <= balance

    lo, hi = 0, 1  # fits(0): the first block fits, checked above
    while fits(hi):
        if rate.initial_block + hi * rate.increment >= cap:
            return cap
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return min(rate.initial_block + lo * rate.increment, cap)
