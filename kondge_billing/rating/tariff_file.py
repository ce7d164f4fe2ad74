"""Tariff files: YAML in, a TariffDoc and the list of every problem out.

The file is composed into YAML nodes (which carry their line numbers) and
read node by node; no value goes through YAML's own type guessing, so a
price is read from its text straight into a Decimal. Every check appends a
"file:line: message" to the problem list instead of stopping, so one run
reports every mistake. The schema, by example, is tariffs/example.yaml and
docs/operators.md, Tariffs.

Values are refused beyond what the engine prices exactly (its limits, in
engine.py): amounts (prices, connect and minimum charges, surcharges) from 0
to 1,000,000 with at most 8 decimals; initial blocks 0 to 86,400 seconds,
increments and step lengths 1 to 86,400; at most 32 steps a rate, 24 bands,
48 stretches of bands on one day, 32 discounts, 16 surcharges.
"""

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from ..identifiers import NAME, label_problem
from .money import ROUNDING_MODES, ZERO, MoneyError, quantum, to_decimal
from .engine import (ALL_BANDS, DAY_KINDS, MAX_AMOUNT, MAX_BANDS, MAX_BLOCK, MAX_DAY_RANGES,
                     MAX_DISCOUNTS, MAX_PLACES, MAX_STEPS, MAX_SURCHARGES, MINUTES_PER_DAY, Band,
                     Discount, Rate, Step, Surcharge)

try:
    _LOADER = yaml.CSafeLoader
except AttributeError:        # PyYAML without libyaml: slower, same result
    _LOADER = yaml.SafeLoader

PREFIX = re.compile(r"^[0-9]{1,32}\Z")
RANGE = re.compile(r"^([0-9]{1,32})-([0-9]{1,32})\Z")
HOURS = re.compile(r"^([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})\Z")
MAX_RANGE = 100000
# Bounds checked before a file is parsed. A tariff nests six levels at most;
# a deck of a million prefixes is about 10 MB. Deeper or larger text is
# refused unread: the YAML composer recurses per level and would crash.
MAX_DEPTH = 32
MAX_SOURCE_MB = 64
_PLACES = quantum(MAX_PLACES)
SELECTORS = {"categories": "categories", "access": "access", "gateways": "gateways",
             "callers": "callers"}


@dataclass
class PlanDoc:
    name: str
    priority: int
    line: int
    categories: tuple[str, ...] | None = None
    access: tuple[str, ...] | None = None          # access number (DNIS) prefixes
    gateways: tuple[str, ...] | None = None
    callers: tuple[str, ...] | None = None         # caller number (ANI) prefixes
    rates: dict = field(default_factory=dict)      # (destination, band or "*") -> Rate


@dataclass
class TariffDoc:
    path: str
    source: str
    name: str = ""
    default: bool = False
    valid_from: datetime | None = None
    currency: str = ""
    decimals: int = 4
    rounding: str = "up"
    timezone: str = "UTC"
    destinations: dict = field(default_factory=dict)   # name -> [prefix]
    prefixes: dict = field(default_factory=dict)       # prefix -> destination name
    bands: tuple[Band, ...] = ()
    holidays: frozenset = frozenset()
    discounts: tuple[Discount, ...] = ()
    surcharges: tuple[Surcharge, ...] = ()
    plans: list = field(default_factory=list)

    @property
    def band_names(self) -> list[str]:
        return [b.name for b in self.bands]


class _Reader:
    """Reads nodes, collecting problems with the node's line."""

    def __init__(self, path: str):
        self.path = path
        self.problems: list[str] = []

    def err(self, node, message: str):
        line = node.start_mark.line + 1 if node is not None else 1
        self.problems.append(f"{self.path}:{line}: {message}")

    def mapping(self, node, what: str, allowed=None) -> dict:
        if not isinstance(node, yaml.MappingNode):
            self.err(node, f"{what}: expected a mapping (key: value lines)")
            return {}
        result = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is None:
                self.err(key_node, f"{what}: a key must be plain text")
            elif key in result:
                self.err(key_node, f"{what}: {key!r} given twice")
            elif allowed is not None and key not in allowed:
                self.err(key_node, f"{what}: unknown key {key!r} (known: "
                                   f"{', '.join(sorted(allowed))})")
            else:
                result[key] = value_node
        return result

    def sequence(self, node, what: str) -> list:
        if isinstance(node, yaml.ScalarNode):
            return [node]                   # a single item may stand alone
        if not isinstance(node, yaml.SequenceNode):
            self.err(node, f"{what}: expected a list")
            return []
        return node.value

    def text(self, node, what: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.value == "":
            self.err(node, f"{what}: expected a value")
            return None
        return node.value

    def label(self, node, text: str, what: str):
        """A free-text name (destination, plan, discount, surcharge) is one line of text."""
        problem = label_problem(text, what)
        if problem is not None:
            self.err(node, problem)

    def names(self, node, what: str) -> tuple[str, ...] | None:
        items = [self.text(n, what) for n in self.sequence(node, what)]
        return tuple(i for i in items if i is not None)

    def integer(self, node, what: str, low: int, high: int | None = None) -> int | None:
        raw = self.text(node, what)
        if raw is None:
            return None
        if not re.fullmatch(r"-?[0-9]+", raw):
            self.err(node, f"{what}: {raw!r} is not a whole number")
            return None
        value = int(raw) if len(raw) <= 20 else (-1 if raw.startswith("-") else 1) * 10 ** 20
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"at least {low}"
            self.err(node, f"{what}: {raw} must be {bound}")
            return None
        return value

    def money(self, node, what: str, most: Decimal = MAX_AMOUNT) -> Decimal | None:
        """An amount from 0 to `most` with at most MAX_PLACES decimals."""
        raw = self.text(node, what)
        if raw is None:
            return None
        try:
            value = to_decimal(raw)
        except MoneyError:
            self.err(node, f"{what}: {raw!r} is not an amount")
            return None
        if value < 0:
            self.err(node, f"{what}: negative price {raw}")
        elif value > most:
            self.err(node, f"{what}: {raw} is more than {most:,}")
        elif value != value.quantize(_PLACES):
            self.err(node, f"{what}: {raw} has more than {MAX_PLACES} decimals")
        else:
            return value
        return None

    def when(self, node, what: str, zone) -> datetime | None:
        raw = self.text(node, what)
        if raw is None:
            return None
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            self.err(node, f"{what}: {raw!r} is not a date or date-time like 2026-01-01 "
                           "or 2026-01-01T08:00:00+00:00")
            return None
        return value if value.tzinfo else value.replace(tzinfo=zone)


def _parse_hours(reader: _Reader, node) -> list[tuple[int, int]]:
    ranges = []
    for item in reader.sequence(node, "hours"):
        raw = reader.text(item, "hours")
        m = HOURS.match(raw or "")
        if not m:
            if raw is not None:
                reader.err(item, f"hours: {raw!r} is not HH:MM-HH:MM")
            continue
        h1, m1, h2, m2 = (int(x) for x in m.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if h1 > 23 or m1 > 59 or m2 > 59 or end > MINUTES_PER_DAY:
            reader.err(item, f"hours: {raw!r} is not a time of day (00:00 to 24:00)")
        elif start == end:
            reader.err(item, f"hours: {raw!r} is empty")
        elif start < end:
            ranges.append((start, end))
        else:                                   # wraps past midnight: 22:00-08:00
            ranges += [(start, MINUTES_PER_DAY), (0, end)] if end else [(start, MINUTES_PER_DAY)]
    return ranges


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _read_bands(reader: _Reader, node, has_holidays: bool) -> tuple[Band, ...]:
    bands = []
    owner: dict[str, list] = {kind: [None] * MINUTES_PER_DAY for kind in DAY_KINDS}
    specs = reader.mapping(node, "bands")
    if len(specs) > MAX_BANDS:
        reader.err(node, f"bands: {len(specs)} bands; at most {MAX_BANDS}")
    for name, body in specs.items():
        if not NAME.match(name):
            reader.err(body, f"band {name!r}: a name of letters, digits, '_', '.', '-'")
        spec = reader.mapping(body, f"band {name}", {"days", "hours"})
        days = reader.names(spec["days"], f"band {name}: days") if "days" in spec else None
        if not days:
            reader.err(body, f"band {name}: days: list the days (mon ... sun, holiday)")
            continue
        for d in days:
            if d not in DAY_KINDS:
                reader.err(spec["days"], f"band {name}: unknown day {d!r} (use "
                                         f"{', '.join(DAY_KINDS)})")
        days = tuple(d for d in days if d in DAY_KINDS)
        minutes = _parse_hours(reader, spec["hours"]) if "hours" in spec else [
            (0, MINUTES_PER_DAY)]
        clashes = set()
        for kind in days:
            for s, e in minutes:
                for minute in range(s, e):
                    other = owner[kind][minute]
                    if other is not None and (other, kind) not in clashes:
                        clashes.add((other, kind))
                        reader.err(body, f"band {name} overlaps band {other} on {kind} at "
                                         f"{_hhmm(minute)}")
                    owner[kind][minute] = name
        bands.append(Band(name, days, tuple(sorted(minutes))))
    if bands:
        kinds = DAY_KINDS if has_holidays else DAY_KINDS[:7]
        for kind in DAY_KINDS:
            stretches = sum(len(b.minutes) for b in bands if kind in b.days)
            if stretches > MAX_DAY_RANGES:
                reader.err(node, f"bands: {kind} is cut into {stretches} stretches; at most "
                                 f"{MAX_DAY_RANGES}")
        for kind in kinds:
            gaps = [m for m in range(MINUTES_PER_DAY) if owner[kind][m] is None]
            if gaps:
                reader.err(node, f"bands: no band covers {kind} from {_hhmm(gaps[0])}"
                                 + (" (holidays are listed: give a band the day 'holiday')"
                                    if kind == "holiday" else ""))
    return tuple(bands)


def _read_destinations(reader: _Reader, node, doc: TariffDoc):
    for name, body in reader.mapping(node, "destinations").items():
        reader.label(body, name, "destination")
        found = []
        for item in reader.sequence(body, f"destination {name}"):
            if not isinstance(item, yaml.ScalarNode):
                reader.err(item, f"destination {name}: a prefix like 4470 or a range like "
                                 "4470-4479")
                continue
            raw = item.value
            if PREFIX.match(raw):
                expanded = (raw,)
            else:
                m = RANGE.match(raw)
                if not m or len(m[1]) != len(m[2]) or int(m[1]) > int(m[2]) \
                        or int(m[2]) - int(m[1]) >= MAX_RANGE:
                    reader.err(item, f"destination {name}: {raw!r} is not a prefix (digits) "
                                     f"or a range of equally long prefixes like 4470-4479")
                    continue
                width = len(m[1])
                expanded = tuple(str(n).zfill(width) for n in range(int(m[1]), int(m[2]) + 1))
            for prefix in expanded:
                other = doc.prefixes.get(prefix)
                if other is not None:
                    reader.err(item, f"destination {name}: prefix {prefix} is already in "
                                     f"destination {other}")
                    continue
                doc.prefixes[prefix] = name
                found.append(prefix)
        if not found:
            reader.err(body, f"destination {name}: no prefixes")
        doc.destinations[name] = found


RATE_KEYS = {"destination", "band", "per_minute", "increment", "connect", "minimum", "initial",
             "steps"}
DEFAULT_KEYS = {"connect", "minimum", "initial", "increment"}


def _read_rate(reader: _Reader, spec: dict, defaults: dict, where: str) -> Rate | None:
    """The rate a plan's entry gives, or None; every value is read (and every
    problem reported) before giving up."""
    def pick(key, read, *args):
        if key in spec:
            return read(spec[key], f"{where}: {key}", *args)
        return defaults.get(key)

    connect = pick("connect", reader.money) or Decimal(0)
    minimum = pick("minimum", reader.money) or Decimal(0)
    steps = _read_steps(reader, spec, defaults, where) if "steps" in spec \
        else _read_single_step(reader, spec, defaults, where, pick)
    initial = pick("initial", reader.integer, 0, MAX_BLOCK)
    if steps is None:
        return None
    if initial is None:
        initial = steps[0].increment if "initial" not in spec else None
    if initial is None:
        return None
    return Rate(connect, minimum, initial, tuple(steps))


def _read_single_step(reader: _Reader, spec: dict, defaults: dict, where: str, pick):
    if "per_minute" not in spec:
        reader.err(spec.get("destination"), f"{where}: per_minute (or steps) missing")
        return None
    price = reader.money(spec["per_minute"], f"{where}: per_minute")
    inc = pick("increment", reader.integer, 1, MAX_BLOCK)
    if inc is None and "increment" not in spec and "increment" not in defaults:
        reader.err(spec["per_minute"], f"{where}: increment missing (or set "
                                       "defaults: increment)")
    return [Step(0, price, inc)] if price is not None and inc is not None else None


def _read_steps(reader: _Reader, spec: dict, defaults: dict, where: str):
    if "per_minute" in spec:
        reader.err(spec["per_minute"], f"{where}: give per_minute or steps, not both")
    items = reader.sequence(spec["steps"], f"{where}: steps")
    if not items:
        reader.err(spec["steps"], f"{where}: steps: at least one step")
        return None
    if len(items) > MAX_STEPS:
        reader.err(spec["steps"], f"{where}: steps: {len(items)} steps; at most {MAX_STEPS}")
        return None
    steps, start, broken = [], 0, False
    for n, item in enumerate(items):
        what = f"{where}: step {n + 1}"
        s = reader.mapping(item, what, {"seconds", "per_minute", "increment"})
        price = reader.money(s["per_minute"], f"{what}: per_minute") if "per_minute" in s \
            else reader.err(item, f"{what}: per_minute missing")
        if "increment" in s:
            inc = reader.integer(s["increment"], f"{what}: increment", 1, MAX_BLOCK)
        else:
            inc = defaults.get("increment")
            if inc is None:
                reader.err(item, f"{what}: increment missing")
        length = None
        if "seconds" in s:
            length = reader.integer(s["seconds"], f"{what}: seconds", 1, MAX_BLOCK)
        elif n < len(items) - 1:
            reader.err(item, f"{what}: seconds missing (only the last step runs to the end "
                             "of the call)")
        if price is None or inc is None:
            broken = True
        else:
            steps.append(Step(start, price, inc))
        start += length or 0
    return None if broken else steps


def _read_plan(reader: _Reader, node, doc: TariffDoc, defaults: dict) -> PlanDoc | None:
    spec = reader.mapping(node, "plan", {"name", "priority", "match", "rates"})
    name = reader.text(spec["name"], "plan: name") if "name" in spec else None
    if name is None:
        reader.err(node, "plan: name missing")
        return None
    reader.label(spec["name"], name, "plan")
    priority = reader.integer(spec["priority"], f"plan {name}: priority", -10**6, 10**6) \
        if "priority" in spec else 0
    plan = PlanDoc(name, priority or 0, node.start_mark.line + 1)
    if "match" in spec:
        for key, items in _read_match(reader, spec["match"], f"plan {name}").items():
            setattr(plan, key, items)
    bands = set(doc.band_names)
    for item in reader.sequence(spec.get("rates"), f"plan {name}: rates") \
            if "rates" in spec else []:
        r = reader.mapping(item, f"plan {name}: rate", RATE_KEYS)
        if "destination" not in r:
            reader.err(item, f"plan {name}: rate: destination missing")
            continue
        dests = reader.names(r["destination"], f"plan {name}: rate: destination")
        band = reader.text(r["band"], f"plan {name}: rate: band") if "band" in r else ALL_BANDS
        if band is not None and band != ALL_BANDS and band not in bands:
            reader.err(r["band"], f"plan {name}: unknown band {band!r}"
                                  + (f" (bands: {', '.join(sorted(bands))})" if bands
                                     else " (the file declares no bands)"))
            band = None
        rate = _read_rate(reader, r, defaults, f"plan {name}: {', '.join(dests)}")
        for dest in dests:
            if dest not in doc.destinations:
                reader.err(r["destination"], f"plan {name}: unknown destination {dest!r}")
            elif band is not None and (dest, band) in plan.rates:
                reader.err(item, f"plan {name}: destination {dest} has two rates for band "
                                 f"{band}")
            elif rate is not None and band is not None:
                plan.rates[(dest, band)] = rate
    if bands:
        rated = {d for d, _ in plan.rates}
        for dest in sorted(rated):
            have = {b for d, b in plan.rates if d == dest}
            missing = sorted(bands - have) if ALL_BANDS not in have else []
            if missing:
                reader.err(node, f"plan {name}: destination {dest} has no rate for band(s) "
                                 f"{', '.join(missing)}")
    return plan


def _read_match(reader: _Reader, node, where: str) -> dict:
    """A plan's or a surcharge's selectors: {selector: names or prefixes}."""
    found = {}
    for key, value in reader.mapping(node, f"{where}: match", set(SELECTORS)).items():
        items = reader.names(value, f"{where}: match: {key}")
        if key in ("access", "callers"):
            for i in items:
                if not PREFIX.match(i):
                    reader.err(value, f"{where}: match: {key}: {i!r} is not a number prefix")
        found[key] = items
    return found


def _overlaps(a, b) -> bool:
    """Could one value satisfy both selectors? (None = any; prefixes nest.)"""
    if a is None or b is None:
        return True
    return any(x.startswith(y) or y.startswith(x) for x in a for y in b)


def _check_plan_overlaps(reader: _Reader, plans: list[PlanDoc]):
    for i, p in enumerate(plans):
        for q in plans[i + 1:]:
            if p.priority != q.priority:
                continue
            if p.categories is not None and q.categories is not None \
                    and not set(p.categories) & set(q.categories):
                continue
            if p.gateways is not None and q.gateways is not None \
                    and not set(p.gateways) & set(q.gateways):
                continue
            if _overlaps(p.access, q.access) and _overlaps(p.callers, q.callers):
                reader.problems.append(
                    f"{reader.path}:{q.line}: plans {p.name} (line {p.line}) and {q.name} both "
                    f"match some calls with the same priority {p.priority}; give one a "
                    f"higher priority")


def _read_discounts(reader: _Reader, node, doc: TariffDoc, zone) -> tuple[Discount, ...]:
    found = []
    items = reader.sequence(node, "discounts")
    if len(items) > MAX_DISCOUNTS:
        reader.err(node, f"discounts: {len(items)} discounts; at most {MAX_DISCOUNTS}")
    for item in items:
        spec = reader.mapping(item, "discount",
                              {"name", "percent", "categories", "bands", "from", "until"})
        name = reader.text(spec["name"], "discount: name") if "name" in spec else "discount"
        if "name" in spec and name is not None:
            reader.label(spec["name"], name, "discount")
        percent = reader.money(spec["percent"], f"discount {name}: percent", Decimal(100)) \
            if "percent" in spec else reader.err(item, f"discount {name}: percent missing")
        if percent is not None and not 0 < percent:
            reader.err(spec["percent"], f"discount {name}: percent must be above 0, at most 100")
            percent = None
        cats = reader.names(spec["categories"], f"discount {name}: categories") \
            if "categories" in spec else None
        bands = reader.names(spec["bands"], f"discount {name}: bands") if "bands" in spec \
            else None
        for b in bands or ():
            if b not in doc.band_names:
                reader.err(spec["bands"], f"discount {name}: unknown band {b!r}")
        start = reader.when(spec["from"], f"discount {name}: from", zone) if "from" in spec \
            else None
        until = reader.when(spec["until"], f"discount {name}: until", zone) \
            if "until" in spec else None
        if start and until and start >= until:
            reader.err(spec["until"], f"discount {name}: until must be after from")
        if percent is not None:
            found.append(Discount(name, percent, cats, bands, start, until))
    return tuple(found)


SURCHARGE_KEYS = {"name", "match", "per_minute", "connect"}


def _read_surcharges(reader: _Reader, node) -> tuple[Surcharge, ...]:
    """More money for the calls a surcharge's selectors match: per_minute added to
    every billed second's price, connect once to an answered call."""
    found, names = [], set()
    items = reader.sequence(node, "surcharges")
    if len(items) > MAX_SURCHARGES:
        reader.err(node, f"surcharges: {len(items)} surcharges; at most {MAX_SURCHARGES}")
    for item in items:
        spec = reader.mapping(item, "surcharge", SURCHARGE_KEYS)
        name = reader.text(spec["name"], "surcharge: name") if "name" in spec else None
        if name is None:
            if "name" not in spec:
                reader.err(item, "surcharge: name missing")
            continue
        reader.label(spec["name"], name, "surcharge")
        if name in names:
            reader.err(item, f"surcharge {name}: given twice")
        names.add(name)
        if "per_minute" not in spec and "connect" not in spec:
            reader.err(item, f"surcharge {name}: per_minute, connect or both")
            continue
        amounts = {key: reader.money(spec[key], f"surcharge {name}: {key}") if key in spec
                   else ZERO for key in ("per_minute", "connect")}
        match = _read_match(reader, spec["match"], f"surcharge {name}") if "match" in spec \
            else {}
        if None not in amounts.values():
            found.append(Surcharge(name, **amounts, **match))
    return tuple(found)


TOP_KEYS = {"tariff", "default", "valid_from", "currency", "decimals", "rounding", "timezone",
            "defaults", "destinations", "bands", "holidays", "plans", "discounts", "surcharges"}


_OPENS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSES = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _too_deep(source: str) -> int | None:
    """The line where the text nests deeper than MAX_DEPTH, or None.

    The parser's events are read one by one (libyaml keeps no recursion), so
    this stops at the first level too deep without building anything."""
    depth = 0
    for event in yaml.parse(source, Loader=_LOADER):
        if isinstance(event, _OPENS):
            depth += 1
            if depth > MAX_DEPTH:
                return event.start_mark.line + 1
        elif isinstance(event, _CLOSES):
            depth -= 1
    return None


def parse(source: str, path: str = "<tariff>") -> tuple[TariffDoc | None, list[str]]:
    """A tariff file's text -> (the document, every problem found)."""
    reader = _Reader(path)
    if len(source) > MAX_SOURCE_MB * 2**20:
        return None, [f"{path}:1: the file is larger than {MAX_SOURCE_MB} MB: split its "
                      "destinations into several tariffs"]
    try:
        too_deep = _too_deep(source)
        if too_deep is not None:
            return None, [f"{path}:{too_deep}: nested more than {MAX_DEPTH} levels deep "
                          "(a tariff file nests six at most)"]
        root = yaml.compose(source, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        return None, [f"{path}:{line}: not valid YAML: {exc.problem or exc}"]
    except yaml.YAMLError as exc:
        return None, [f"{path}:1: not valid YAML: {exc}"]
    if root is None:
        return None, [f"{path}:1: the file is empty"]
    doc = TariffDoc(path=path, source=source)
    top = reader.mapping(root, "tariff file", TOP_KEYS)
    for key in ("tariff", "valid_from", "currency", "destinations", "plans"):
        if key not in top:
            reader.err(root, f"{key}: missing")
    if "tariff" in top:
        doc.name = reader.text(top["tariff"], "tariff") or ""
        if doc.name and not NAME.match(doc.name):
            reader.err(top["tariff"], "tariff: a name of letters, digits, '_', '.', '-'")
    if "default" in top:
        flag = reader.text(top["default"], "default")
        if flag not in ("true", "false"):
            reader.err(top["default"], "default: true or false")
        doc.default = flag == "true"
    if "currency" in top:
        doc.currency = reader.text(top["currency"], "currency") or ""
        if not re.fullmatch(r"[A-Z]{3}", doc.currency):
            reader.err(top["currency"], "currency: a three-letter ISO 4217 code such as USD")
    if "decimals" in top:
        doc.decimals = reader.integer(top["decimals"], "decimals", 0, 8) or 0
    if "rounding" in top:
        doc.rounding = reader.text(top["rounding"], "rounding") or "up"
        if doc.rounding not in ROUNDING_MODES:
            reader.err(top["rounding"], f"rounding: one of {', '.join(ROUNDING_MODES)}")
    zone = ZoneInfo("UTC")
    if "timezone" in top:
        doc.timezone = reader.text(top["timezone"], "timezone") or "UTC"
        try:
            zone = ZoneInfo(doc.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            reader.err(top["timezone"], f"timezone: unknown time zone {doc.timezone!r} "
                                        "(e.g. UTC, Europe/London)")
            doc.timezone = "UTC"
    if "valid_from" in top:
        doc.valid_from = reader.when(top["valid_from"], "valid_from", zone)
    defaults = {}
    if "defaults" in top:
        spec = reader.mapping(top["defaults"], "defaults", DEFAULT_KEYS)
        for key, value in spec.items():
            if key in ("connect", "minimum"):
                got = reader.money(value, f"defaults: {key}")
            else:
                got = reader.integer(value, f"defaults: {key}", 1 if key == "increment" else 0,
                                     MAX_BLOCK)
            if got is not None:
                defaults[key] = got
    holidays = set()
    for item in reader.sequence(top["holidays"], "holidays") if "holidays" in top else []:
        raw = reader.text(item, "holidays")
        try:
            holidays.add(date.fromisoformat(raw or ""))
        except ValueError:
            reader.err(item, f"holidays: {raw!r} is not a date like 2026-12-25")
    doc.holidays = frozenset(holidays)
    if "bands" in top:
        doc.bands = _read_bands(reader, top["bands"], bool(holidays))
    if "destinations" in top:
        _read_destinations(reader, top["destinations"], doc)
    if "discounts" in top:
        doc.discounts = _read_discounts(reader, top["discounts"], doc, zone)
    if "surcharges" in top:
        doc.surcharges = _read_surcharges(reader, top["surcharges"])
    names = set()
    for item in reader.sequence(top["plans"], "plans") if "plans" in top else []:
        plan = _read_plan(reader, item, doc, defaults)
        if plan is None:
            continue
        if plan.name in names:
            reader.err(item, f"plan {plan.name}: given twice")
        names.add(plan.name)
        doc.plans.append(plan)
    _check_plan_overlaps(reader, doc.plans)
    return doc, reader.problems


def parse_file(path) -> tuple[TariffDoc | None, list[str]]:
    p = Path(path)
    try:
        if p.stat().st_size > MAX_SOURCE_MB * 2**20:
            return None, [f"{path}:1: the file is larger than {MAX_SOURCE_MB} MB: split its "
                          "destinations into several tariffs"]
        source = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{path}:1: cannot read: {exc}"]
    return parse(source, str(path))
