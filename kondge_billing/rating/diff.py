"""What changed between two tariff versions, and what each would have earned."""

from .money import ZERO
from .engine import Rate, Surcharge, rate_call
from .resolve import context_for
from .tariff_file import TariffDoc


def describe_rate(rate: Rate) -> str:
    steps = "; ".join(
        (f"from {s.start} s " if len(rate.steps) > 1 else "")
        + f"{s.per_minute}/min per {s.increment} s" for s in rate.steps)
    extra = "".join(f", {k} {v}" for k, v in (("connect", rate.connect),
                                              ("minimum", rate.minimum)) if v)
    return f"{steps}, initial {rate.initial} s{extra}"


def describe_surcharge(s: Surcharge) -> str:
    amounts = ", ".join(text for amount, text in ((s.per_minute, f"+{s.per_minute}/min"),
                                                  (s.connect, f"+{s.connect} connect")) if amount)
    match = "; ".join(f"{key} {', '.join(getattr(s, key))}"
                      for key in ("access", "callers", "gateways", "categories")
                      if getattr(s, key) is not None)
    return (amounts or "+0") + (f" for {match}" if match else " for every call")


SETTINGS = ("name", "valid_from", "currency", "decimals", "rounding", "timezone", "default")


def diff_docs(old: TariffDoc, new: TariffDoc) -> dict:
    """Every difference, as plain data (the CLI prints it or dumps it as JSON)."""
    out = {"settings": [], "destinations": [], "plans": [], "rates": [], "surcharges": [],
           "rules": []}
    for key in SETTINGS:
        a, b = getattr(old, key), getattr(new, key)
        if a != b:
            out["settings"].append({"what": key, "old": str(a), "new": str(b)})
    for name in sorted(set(old.destinations) | set(new.destinations)):
        a, b = set(old.destinations.get(name, ())), set(new.destinations.get(name, ()))
        if a == b:
            continue
        change = ("added" if not a else "removed" if not b else "changed")
        out["destinations"].append({"destination": name, "change": change,
                                    "prefixes_added": len(b - a), "prefixes_removed": len(a - b),
                                    "examples": sorted(b - a)[:3] + sorted(a - b)[:3]})
    old_plans = {p.name: p for p in old.plans}
    new_plans = {p.name: p for p in new.plans}
    for name in sorted(set(old_plans) | set(new_plans)):
        a, b = old_plans.get(name), new_plans.get(name)
        if a is None or b is None:
            out["plans"].append({"plan": name, "change": "added" if a is None else "removed"})
        else:
            for field in ("priority", "categories", "access", "gateways", "callers"):
                if getattr(a, field) != getattr(b, field):
                    out["plans"].append({"plan": name, "change": field,
                                         "old": str(getattr(a, field)),
                                         "new": str(getattr(b, field))})
        ra, rb = (a.rates if a else {}), (b.rates if b else {})
        for key in sorted(set(ra) | set(rb)):
            if ra.get(key) != rb.get(key):
                out["rates"].append({
                    "plan": name, "destination": key[0], "band": key[1],
                    "old": describe_rate(ra[key]) if key in ra else None,
                    "new": describe_rate(rb[key]) if key in rb else None})
    old_sur = {x.name: x for x in old.surcharges}
    new_sur = {x.name: x for x in new.surcharges}
    for name in sorted(set(old_sur) | set(new_sur)):
        a, b = old_sur.get(name), new_sur.get(name)
        if a != b:
            out["surcharges"].append({
                "surcharge": name,
                "change": "added" if a is None else "removed" if b is None else "changed",
                "old": describe_surcharge(a) if a else None,
                "new": describe_surcharge(b) if b else None})
    for key in ("bands", "holidays", "discounts"):
        if getattr(old, key) != getattr(new, key):
            out["rules"].append(key)
    return out


def rerate(calls: list[dict], old: TariffDoc, new: TariffDoc) -> dict:
    """Price each stored call under both versions; totals and the calls that change."""
    totals = {"calls": len(calls), "recorded": ZERO, "old": ZERO, "new": ZERO,
              "unrated_old": 0, "unrated_new": 0, "changed": 0}
    changed = []
    for call in calls:
        costs = []
        for label, doc in (("old", old), ("new", new)):
            ctx = context_for(doc, call["destination"] or "", category=call.get("category"),
                              caller=call.get("caller"), access=call.get("access_number"),
                              gateway=call.get("gateway"))
            if ctx is None:
                totals[f"unrated_{label}"] += 1
                costs.append(None)
                continue
            cost = rate_call(ctx, call["connect_time"], call["duration"], explain=False).cost
            totals[label] += cost
            costs.append(cost)
        totals["recorded"] += call.get("cost") or ZERO
        if costs[0] != costs[1]:
            totals["changed"] += 1
            if len(changed) < 20:
                changed.append({"cdr": call["id"], "destination": call["destination"],
                                "duration": call["duration"], "recorded": call.get("cost"),
                                "old": costs[0], "new": costs[1]})
    totals["difference"] = totals["new"] - totals["old"]
    totals["examples"] = changed
    return totals

