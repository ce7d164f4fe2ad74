"""Identifiers and their validation: one rule each, used everywhere.

Card and voucher numbers (with their Luhn check digit), PINs, the names of
gateways, tariffs, categories and batches, language codes. Currencies have
their own module (currencies.py, the ISO 4217 list). Each check is a plain
function that returns the problem or None, so a caller can report every
problem at once.
"""

import re
import unicodedata

CARD_NUMBER = re.compile(r"^[0-9]{4,20}\Z")           # cards and vouchers
PIN = re.compile(r"^[0-9]{1,16}\Z")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")            # gateway, tariff
CATEGORY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}\Z")
BATCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")     # also operation ids
LANGUAGE = re.compile(r"^[a-z]{2,3}\Z")

LABEL_MAX = 100                     # free-text names: destinations, plans, surcharges

# control characters (a newline, a tab, NUL), line and paragraph separators, lone surrogates
LINE_BREAKING = {"Cc", "Zl", "Zp", "Cs"}

NAME_RULE = "letters, digits, '.', '_' or '-', up to 63, starting with a letter or digit"


def _luhn_sum(digits: str, double_first: bool) -> int:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if (i % 2 == 0) == double_first:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total


def luhn_valid(number: str) -> bool:
    """The Luhn check digit (ISO/IEC 7812) of a card number is right."""
    return _luhn_sum(number, double_first=False) % 10 == 0


def luhn_digit(body: str) -> str:
    """The check digit that makes body + digit pass the Luhn test."""
    return str(-_luhn_sum(body, double_first=True) % 10)


def card_number_problem(number: str, check_digit: str = "luhn") -> str | None:
    """Why a card number cannot be one of ours, without asking the database."""
    if not CARD_NUMBER.match(number or ""):
        return f"card number {(number or '')[:24]!r} is not 4 to 20 digits"
    if check_digit == "luhn" and not luhn_valid(number):
        return f"card number {number} fails its check digit (mistyped?)"
    return None


def pin_problem(pin: str | None) -> str | None:
    return None if PIN.match(pin or "") else "PIN: 1 to 16 digits"


def language_problem(language) -> str | None:
    if isinstance(language, str) and LANGUAGE.match(language):
        return None
    return "language: a two- or three-letter code such as en"


def name_problem(name, what: str = "name") -> str | None:
    return None if isinstance(name, str) and NAME.match(name) else f"{what}: {NAME_RULE}"


def label_problem(text, what: str = "name") -> str | None:
    """A free-text name an operator gives (a destination such as 'UK - Mobile'):
    1 to LABEL_MAX characters, no control characters (a newline, a tab) and no
    spaces around it, since it is written into tariff files, reports and exports."""
    if not isinstance(text, str) or not text.strip():
        return f"{what}: missing"
    if len(text) > LABEL_MAX:
        return f"{what}: {text[:24]!r}... is longer than {LABEL_MAX} characters"
    if any(unicodedata.category(ch) in LINE_BREAKING for ch in text):
        return f"{what}: {text[:40]!r} holds a control character (a newline, a tab, ...)"
    if text != text.strip():
        return f"{what}: {text!r} has spaces around it"
    return None
