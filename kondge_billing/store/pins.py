"""PINs are stored only as a keyed hash (HMAC-SHA256).

The key lives outside the database (var/secrets/pin.key, mode 0600, made
by set-up), so a copy of the database alone does not give the PINs away,
not even to a brute force over the short PIN space.
"""

import hashlib
import hmac
from pathlib import Path

SCHEME = "hmac-sha256"


class PinKeyError(RuntimeError):
    pass


def load_key(path: Path) -> bytes:
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise PinKeyError(f"cannot read the PIN key {path}: {exc.strerror}; "
                          "run 'make setup' to create it") from None
    if len(text) < 32:
        raise PinKeyError(f"the PIN key {path} is too short; it must hold 32+ hex digits")
    return text.encode()


def pin_hash(key: bytes, card_number: str, pin: str) -> str:
    digest = hmac.new(key, f"{card_number}:{pin}".encode(), hashlib.sha256).hexdigest()
    return f"{SCHEME}${digest}"


def pin_matches(key: bytes, card_number: str, pin: str, stored: str) -> bool:
    return hmac.compare_digest(pin_hash(key, card_number, pin), stored)
