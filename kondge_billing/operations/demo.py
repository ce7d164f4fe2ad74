"""The demo set loaded on first start with an empty database."""

from decimal import Decimal
from pathlib import Path

from ..store import cards, gateways
from ..rating import tariff_file
from ..store import tariffs

# The demo tariff (USD; per minute: 1 -> 0.02, 44 -> 0.05, 4470-4479 -> 0.15;
# nothing else allowed) is a commented tariff file, loaded as any other.
DEMO_TARIFF_FILE = Path(__file__).resolve().parents[2] / "tariffs" / "demo.yaml"
DEMO_ACCESS_NUMBERS = [("18005550100", "demo toll-free access number"),
                       ("4420799990000", "demo London local access number")]
# number, PIN, balance, status, language
DEMO_CARDS = [("1000000008", "1234", Decimal("10.00"), "active", "en"),
              ("1000000016", "2345", Decimal("0.50"), "active", "es"),
              ("1000000024", "3456", Decimal("0.00"), "active", "en"),
              ("1000000032", "4567", Decimal("5.00"), "suspended", "fr")]


def is_empty(cur) -> bool:
    cur.execute("""SELECT NOT EXISTS (SELECT 1 FROM kondge.gateway)
                      AND NOT EXISTS (SELECT 1 FROM kondge.card)
                      AND NOT EXISTS (SELECT 1 FROM kondge.tariff) AS empty""")
    return cur.fetchone()["empty"]


def load_tariff_file(cur, path) -> dict:
    """Validate and load one tariff file as a new version (refuses a broken one)."""
    doc, problems = tariff_file.parse_file(path)
    if problems:
        raise ValueError("\n".join(problems))
    return tariffs.load(cur, doc, str(path))


def load(cur, pin_key: bytes) -> list[str]:
    """Load the demo set; return the lines that describe it."""
    load_tariff_file(cur, DEMO_TARIFF_FILE)
    cur.executemany("INSERT INTO kondge.access_number (number, description) VALUES (%s, %s)",
                    DEMO_ACCESS_NUMBERS)
    gateways.add(cur, "demo-gw", "127.0.0.1", "testing123", "cisco")
    lines = ["gateway demo-gw: 127.0.0.1, secret testing123, dialect cisco",
             f"tariff demo ({DEMO_TARIFF_FILE.name}, USD): connect 0, initial block 60 s, "
             "increment 6 s; per minute 1 -> 0.02, 44 -> 0.05, 4470-4479 -> 0.15; other destinations refused",
             "access numbers: " + ", ".join(n for n, _ in DEMO_ACCESS_NUMBERS)]
    for number, pin, balance, status, language in DEMO_CARDS:
        cards.add(cur, pin_key, number, pin, balance, "USD", language=language, operator="demo")
        if status != "active":
            cur.execute("UPDATE kondge.card SET status = %s WHERE number = %s", (status, number))
        lines.append(f"card {number} PIN {pin}: {balance} USD, {status}, language {language}")
    return lines
