"""Which plan and destination a call gets under a tariff file, in Python.

The same rules as kondge.rating_context() in SQL (the database tests check
that both agree), for what works on files rather than on the loaded
tariff: `kondge rate --file`, `kondge tariffs diff` and re-rating.
"""

from .codec import rate_to_json, rules_to_json
from .engine import RatingContext
from .tariff_file import PlanDoc, TariffDoc
from .codec import context_from_json


def _prefix_match(prefixes, number) -> bool:
    return prefixes is None or any((number or "").startswith(p) for p in prefixes)


def plan_matches(plan: PlanDoc, category, caller, access, gateway) -> bool:
    return ((plan.categories is None or category in plan.categories)
            and (plan.gateways is None or gateway in plan.gateways)
            and _prefix_match(plan.access, access)
            and _prefix_match(plan.callers, caller))


def select_plan(doc: TariffDoc, category=None, caller=None, access=None,
                gateway=None) -> PlanDoc | None:
    """The highest-priority plan whose selectors all match (first in file on a tie)."""
    best = None
    for plan in doc.plans:
        if plan_matches(plan, category, caller, access, gateway) and (
                best is None or plan.priority > best.priority):
            best = plan
    return best


def longest_prefix(doc: TariffDoc, number: str) -> tuple[str, str] | None:
    for n in range(min(len(number or ""), 32), 0, -1):
        dest = doc.prefixes.get(number[:n])
        if dest is not None:
            return number[:n], dest
    return None


def rules_json(doc: TariffDoc) -> dict:
    return rules_to_json(doc.timezone, doc.bands, doc.holidays, doc.discounts, doc.surcharges)


def context_json(doc: TariffDoc, destination: str, category=None, caller=None, access=None,
                 gateway=None, version=None) -> dict | None:
    """The rating_context() answer for one call under this file (None: blocked)."""
    if not (destination or "").isdigit():
        return None
    plan = select_plan(doc, category, caller, access, gateway)
    found = longest_prefix(doc, destination)
    if plan is None or found is None:
        return None
    prefix, dest = found
    rates = {band: rate_to_json(r) for (d, band), r in plan.rates.items() if d == dest}
    if not rates:
        return None
    return {"tariff": doc.name, "tariff_id": None, "version_id": None, "version": version,
            "currency": doc.currency, "decimals": doc.decimals, "rounding": doc.rounding,
            "rules": rules_json(doc), "plan": plan.name, "category": category,
            "destination": dest, "prefix": prefix, "rates": rates,
            "access_number": access, "caller": caller, "gateway": gateway}


def context_for(doc: TariffDoc, destination: str, **call) -> RatingContext | None:
    return context_from_json(context_json(doc, destination, **call))
