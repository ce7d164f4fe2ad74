"""The JSON shape shared by the database and the engine.

kondge.rating_context() returns it; a tariff file resolved in Python
(resolve.py) builds the same shape; context_from_json turns either into the
engine's RatingContext. Money is a string in JSON (exact), never a number.

    {"tariff", "tariff_id", "version_id", "version", "currency", "decimals",
     "rounding", "plan", "category", "destination", "prefix",
     "rates": {band or "*": rate_to_json},
     "rules": rules_to_json (the version's: time zone, bands, holidays,
              discounts, surcharges),
     "access_number", "caller", "gateway"}      # the call's facts surcharges
                                                 # select by; absent = None
"""

import json
from datetime import date, datetime
from decimal import Decimal

from .money import to_decimal
from .engine import Band, Discount, Rate, RatingContext, Step, Surcharge


def rate_to_json(rate: Rate) -> dict:
    return {"connect": str(rate.connect), "minimum": str(rate.minimum), "initial": rate.initial,
            "steps": [{"start": s.start, "per_minute": str(s.per_minute),
                       "increment": s.increment} for s in rate.steps]}


# Every call of a destination brings the same rate, every call under a
# tariff version the same rules: each is parsed once, keyed by exactly what
# the parse reads (amounts by their text, whole numbers and names as given),
# so a remembered value is the value the parse would give (a band minute of
# 480.0 and one of 480 share one, as they always shared the engine's day
# tables). The records are immutable; a memo is emptied when it holds
# MEMO_SIZE entries.
MEMO_SIZE = 4096
_RATES: dict = {}
_RULES: dict = {}


def _remember(memo: dict, key, parse):
    try:
        found = memo.get(key)
    except TypeError:                  # something unhashable where a name belongs
        return parse(key)
    if found is None:
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        found = memo[key] = parse(key)
    return found


def rate_from_json(data: dict) -> Rate:
    key = (str(data["connect"]), str(data["minimum"]), data["initial"],
           tuple((s["start"], str(s["per_minute"]), s["increment"]) for s in data["steps"]))
    return _remember(_RATES, key, _parse_rate)


def _parse_rate(key) -> Rate:
    connect, minimum, initial, steps = key
    return Rate(connect=to_decimal(connect), minimum=to_decimal(minimum), initial=int(initial),
                steps=tuple(Step(int(start), to_decimal(per_minute), int(increment))
                            for start, per_minute, increment in steps))


def _when(text):
    return datetime.fromisoformat(text) if text else None


SELECTORS = ("access", "callers", "gateways", "categories")     # a surcharge's `match`


def rules_to_json(timezone: str, bands, holidays, discounts, surcharges=()) -> dict:
    return {
        "timezone": timezone,
        "bands": [{"name": b.name, "days": list(b.days), "minutes": [list(m) for m in b.minutes]}
                  for b in bands],
        "holidays": sorted(d.isoformat() for d in holidays),
        "discounts": [{"name": d.name, "percent": str(d.percent),
                       "categories": list(d.categories) if d.categories is not None else None,
                       "bands": list(d.bands) if d.bands is not None else None,
                       "from": d.start.isoformat() if d.start else None,
                       "until": d.until.isoformat() if d.until else None}
                      for d in discounts],
        "surcharges": [{"name": s.name, "per_minute": str(s.per_minute),
                        "connect": str(s.connect),
                        "match": {key: list(getattr(s, key)) for key in SELECTORS
                                  if getattr(s, key) is not None}}
                       for s in surcharges]}


def _names(items):
    return tuple(items) if items is not None else None


def rules_from_json(rules: dict) -> dict:
    return dict(_rules(rules))


def _rules(rules: dict) -> dict:
    """The parsed rules, as remembered (not to be changed: rules_from_json copies)."""
    bands, holidays = rules.get("bands"), rules.get("holidays")
    discounts, surcharges = rules.get("discounts"), rules.get("surcharges")
    key = (rules.get("timezone") or "UTC",
           tuple([(b["name"], tuple(b["days"]), tuple([tuple(m) for m in b["minutes"]]))
                  for b in bands]) if bands else (),
           tuple(holidays) if holidays else (),
           tuple([(d["name"], str(d["percent"]), _names(d.get("categories")),
                   _names(d.get("bands")), d.get("from"), d.get("until"))
                  for d in discounts]) if discounts else (),
           tuple([(s["name"], s.get("per_minute", "0"), s.get("connect", "0"),
                   tuple([(k, tuple(v)) for k, v in s["match"].items()]) if s.get("match")
                   else ())
                  for s in surcharges]) if surcharges else ())
    return _remember(_RULES, key, _parse_rules)


def _parse_rules(key) -> dict:
    timezone, bands, holidays, discounts, surcharges = key
    return {
        "timezone": timezone,
        "bands": tuple(Band(*band) for band in bands),
        "holidays": frozenset(date.fromisoformat(d) for d in holidays),
        "discounts": tuple(
            Discount(name, to_decimal(percent), categories, bands, _when(start), _when(until))
            for name, percent, categories, bands, start, until in discounts),
        "surcharges": tuple(_surcharge(*s) for s in surcharges)}


def _surcharge(name, per_minute, connect, match) -> Surcharge:
    unknown = [key for key, _ in match if key not in SELECTORS]
    if unknown:          # never drop a selector: the surcharge would reach other calls
        raise ValueError(f"surcharge {name}: unknown selector(s) {', '.join(unknown)}")
    return Surcharge(name, to_decimal(per_minute), to_decimal(connect), **dict(match))


def loads(text: str):
    """JSON with every non-integer number as Decimal (never a float)."""
    return json.loads(text, parse_float=Decimal)


def context_from_json(data) -> RatingContext | None:
    """kondge.rating_context()'s answer (text or parsed) -> RatingContext, or None."""
    if data is None:
        return None
    if isinstance(data, (str, bytes)):
        data = loads(data)
        if data is None:
            return None
    rules = _rules(data.get("rules") or {})
    get = data.get
    return RatingContext(     # by position, in the order of RatingContext's fields
        data["tariff"], get("tariff_id"), get("version_id"), get("version"),
        data["currency"].strip(), int(data["decimals"]), data["rounding"], rules["timezone"],
        data["plan"], get("category"), data["destination"], data["prefix"],
        {band: rate_from_json(r) for band, r in data["rates"].items()},
        rules["bands"], rules["holidays"], rules["discounts"], rules["surcharges"],
        get("access_number"), get("caller"), get("gateway"))
