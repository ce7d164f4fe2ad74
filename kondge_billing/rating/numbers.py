"""Phone numbers in one form: international, digits only, no '+'.

Gateways send a caller's number as they received it: '+447911123456',
'00447911123456', '07911123456'. Each gateway says how its numbers are
written (country code, international and national prefixes), and every
number is turned into the international form before it is compared.
"""

import re
from dataclasses import dataclass

CLEAN = re.compile(r"[\s\-().]")
DIGITS = re.compile(r"^[0-9]{1,32}\Z")


@dataclass(frozen=True)
class NumberFormat:
    country_code: str = ""             # '44'; '' = numbers arrive international
    international_prefix: str = "00"   # '00'; '011' in North America
    national_prefix: str = ""          # '0' in the UK; '' where there is none


def normalise(raw: str | None, fmt: NumberFormat) -> str | None:
    """The international form of a number, or None if it is not a number."""
    if raw is None:
        return None
    text = CLEAN.sub("", raw.strip())
    if text.startswith("+"):
        text = text[1:]
    elif fmt.international_prefix and text.startswith(fmt.international_prefix):
        text = text[len(fmt.international_prefix):]
    elif fmt.national_prefix and fmt.country_code and text.startswith(fmt.national_prefix):
        text = fmt.country_code + text[len(fmt.national_prefix):]
    elif (fmt.country_code and not fmt.national_prefix
          and not text.startswith(fmt.country_code)):
        text = fmt.country_code + text          # national number without a trunk prefix
    return text if DIGITS.match(text) and len(text) >= 4 else None
