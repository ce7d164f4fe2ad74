"""The JSON shape shared by the database and the engine.

kondge.rating_context() returns it; a tariff file resolved in Python
(resolve.py) builds the same shape; context_from_json turns either into the
engine's RatingContext. Money is a string in JSON (exact), never a number.
"""

import json
from datetime import date, datetime
from decimal import Decimal

from ..money import to_decimal
from .engine import Band, Discount, Rate, RatingContext, Step


def rate_to_json(rate: Rate) -> dict:
    return {"connect": str(rate.connect), "minimum": str(rate.minimum), "initial": rate.initial,
            "steps": [{"start": s.start, "per_minute": str(s.per_minute),
                       "increment": s.increment} for s in rate.steps]}


def rate_from_json(data: dict) -> Rate:
    return Rate(connect=to_decimal(str(data["connect"])), minimum=to_decimal(str(data["minimum"])),
                initial=int(data["initial"]),
                steps=tuple(Step(int(s["start"]), to_decimal(str(s["per_minute"])),
                                 int(s["increment"])) for s in data["steps"]))


def _when(text):
    return datetime.fromisoformat(text) if text else None


def rules_to_json(timezone: str, bands, holidays, discounts) -> dict:
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
                      for d in discounts]}


def rules_from_json(rules: dict) -> dict:
    return {
        "timezone": rules.get("timezone") or "UTC",
        "bands": tuple(Band(b["name"], tuple(b["days"]), tuple(tuple(m) for m in b["minutes"]))
                       for b in rules.get("bands") or ()),
        "holidays": frozenset(date.fromisoformat(d) for d in rules.get("holidays") or ()),
        "discounts": tuple(
            Discount(d["name"], to_decimal(str(d["percent"])),
                     tuple(d["categories"]) if d.get("categories") is not None else None,
                     tuple(d["bands"]) if d.get("bands") is not None else None,
                     _when(d.get("from")), _when(d.get("until")))
            for d in rules.get("discounts") or ())}


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
    rules = rules_from_json(data.get("rules") or {})
    return RatingContext(
        tariff=data["tariff"], tariff_id=data.get("tariff_id"),
        version_id=data.get("version_id"), version=data.get("version"),
        currency=data["currency"].strip(), decimals=int(data["decimals"]),
        rounding=data["rounding"], timezone=rules["timezone"], plan=data["plan"],
        category=data.get("category"), destination=data["destination"],
        prefix=data["prefix"],
        rates={band: rate_from_json(r) for band, r in data["rates"].items()},
        bands=rules["bands"], holidays=rules["holidays"], discounts=rules["discounts"])
