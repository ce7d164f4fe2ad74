"""The tariff a card or a category names: found by its name, held to the currency.

The order is the card's own tariff, its category's, the default tariff
(the call path does not read the category's yet). A tariff named for a
card or a category must price in its currency: every version of it loaded
so far (the one in force and any that take over later). Reads the tariff
tables; store/tariffs.py writes them.
"""

# One row per tariff name: its id and the currencies of its versions.
FIND = """
SELECT t.id, t.name,
       coalesce(array_agg(DISTINCT v.currency::text ORDER BY v.currency::text)
                FILTER (WHERE v.currency IS NOT NULL), '{}') AS currencies
  FROM kondge.tariff t LEFT JOIN kondge.tariff_version v ON v.tariff_id = t.id
 WHERE t.name = %s
 GROUP BY t.id
"""


def find(cur, name: str) -> dict | None:
    """{id, name, currencies} of the tariff called name, or None."""
    cur.execute(FIND, (name,))
    return cur.fetchone()


def problem(tariff: dict | None, name: str, currency: str | None, whose: str) -> str | None:
    """What keeps tariff (as find() returned it for name) from rating whose
    calls in currency; None if nothing. currency None: not checked (it has
    a problem of its own)."""
    if tariff is None:
        return f"tariff: no tariff named {name!r}; see 'kondge tariffs list'"
    if not tariff["currencies"]:
        return f"tariff: {name} has no version loaded; load one with 'kondge tariffs load'"
    if currency is not None and tariff["currencies"] != [currency]:
        return (f"tariff: {name} prices in {', '.join(tariff['currencies'])}, {whose} is in "
                f"{currency}; name a tariff in {currency} (see 'kondge tariffs list')")
    return None


def check(cur, name: str, currency: str | None, whose: str) -> tuple[int | None, str | None]:
    """(the tariff's id, None) if name may rate whose calls in currency,
    else (None, what is wrong)."""
    tariff = find(cur, name)
    found = problem(tariff, name, currency, whose)
    return (None, found) if found else (tariff["id"], None)
