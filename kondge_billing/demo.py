"""The demo set loaded on first start with an empty database."""

from decimal import Decimal

from . import cards, gateways

DEMO_TARIFF = {"name": "demo", "currency": "USD", "decimals": 4, "rounding": "up",
               "connect_charge": Decimal("0"), "initial_block": 60, "increment": 6}
# Rates per minute: USA/Canada, UK, UK mobile; nothing else is allowed.
DEMO_RATES = [("1", Decimal("0.02")), ("44", Decimal("0.05"))] + [
    (f"447{d}", Decimal("0.15")) for d in range(10)]
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


def add_tariff(cur, name, currency, rates, decimals=4, rounding="up",
               connect_charge=Decimal(0), initial_block=60, increment=6,
               is_default=False) -> int:
    cur.execute("""INSERT INTO kondge.tariff (name, currency, decimals, rounding, connect_charge,
                                              initial_block, increment, is_default)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                (name, currency, decimals, rounding, connect_charge, initial_block, increment,
                 is_default))
    tariff_id = cur.fetchone()["id"]
    cur.executemany("INSERT INTO kondge.rate (tariff_id, prefix, price_per_minute) "
                    "VALUES (%s, %s, %s)", [(tariff_id, p, price) for p, price in rates])
    return tariff_id


def load(cur, pin_key: bytes) -> list[str]:
    """Load the demo set; return the lines that describe it."""
    add_tariff(cur, rates=DEMO_RATES, is_default=True, **DEMO_TARIFF)
    cur.executemany("INSERT INTO kondge.access_number (number, description) VALUES (%s, %s)",
                    DEMO_ACCESS_NUMBERS)
    gateways.add(cur, "demo-gw", "127.0.0.1", "testing123", "cisco")
    lines = ["gateway demo-gw: 127.0.0.1, secret testing123, dialect cisco",
             "tariff demo (USD): connect 0, initial block 60 s, increment 6 s; per minute "
             "1 -> 0.02, 44 -> 0.05, 4470-4479 -> 0.15; other destinations refused",
             "access numbers: " + ", ".join(n for n, _ in DEMO_ACCESS_NUMBERS)]
    for number, pin, balance, status, language in DEMO_CARDS:
        cards.add(cur, pin_key, number, pin, balance, "USD", language=language)
        if status != "active":
            cur.execute("UPDATE kondge.card SET status = %s WHERE number = %s", (status, number))
        lines.append(f"card {number} PIN {pin}: {balance} USD, {status}, language {language}")
    return lines
