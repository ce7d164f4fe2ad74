"""Carrier rate decks (CSV) -> a tariff file's destinations and rates.

A deck has a header row and one row per prefix. Columns are found by name
(case-insensitive): prefix (prefix, code, dial_code), destination
(destination, name, description, country) and price per minute (rate,
price, per_minute, price_per_minute); optional connect, minimum, initial,
increment. Prefixes of one destination name at one price become one
destination; a name with several prices becomes "Name", "Name #2", ...
Runs of consecutive prefixes are written as ranges (4470-4479).
"""

import csv
import json
import re

from ..identifiers import label_problem
from .money import MoneyError, to_decimal
from ..progress import quiet

COLUMNS = {
    "prefix": ("prefix", "code", "dial_code", "dialcode"),
    "destination": ("destination", "name", "description", "country"),
    "per_minute": ("rate", "price", "per_minute", "price_per_minute"),
    "connect": ("connect", "connect_charge", "connection_fee"),
    "minimum": ("minimum", "minimum_charge"),
    "initial": ("initial", "initial_block", "min_duration"),
    "increment": ("increment", "billing_increment"),
}
REQUIRED = ("prefix", "destination", "per_minute")
OPTIONAL_MONEY = ("connect", "minimum")
OPTIONAL_SECONDS = ("initial", "increment")


def _columns(header: list[str], path: str) -> tuple[dict, list[str]]:
    lowered = [h.strip().lower() for h in header]
    found, problems = {}, []
    for key, names in COLUMNS.items():
        for n in names:
            if n in lowered:
                found[key] = lowered.index(n)
                break
        else:
            if key in REQUIRED:
                problems.append(f"{path}:1: no {key} column (one of {', '.join(names)})")
    return found, problems


def _row_rate(row, cols, path, line, problems):
    """(per_minute, connect, minimum, initial, increment) of one row, or None."""
    values = []
    for key in ("per_minute",) + OPTIONAL_MONEY:
        raw = row[cols[key]].strip() if key in cols and cols[key] < len(row) else ""
        if not raw:
            values.append(None)
            continue
        try:
            value = to_decimal(raw)
        except MoneyError:
            problems.append(f"{path}:{line}: {key}: {raw!r} is not an amount")
            return None
        if value < 0:
            problems.append(f"{path}:{line}: {key}: negative price {raw}")
            return None
        values.append(value)
    if values[0] is None:
        problems.append(f"{path}:{line}: per_minute missing")
        return None
    for key in OPTIONAL_SECONDS:
        raw = row[cols[key]].strip() if key in cols and cols[key] < len(row) else ""
        # ASCII digits only: int() refuses "¹" and reads "٣٠" as 30
        if raw and not (raw.isascii() and raw.isdigit() and (int(raw) > 0 or key == "initial")):
            problems.append(f"{path}:{line}: {key}: {raw!r} is not a positive whole number "
                            "of seconds")
            return None
        values.append(int(raw) if raw else None)
    return tuple(values)


def read_deck(path, progress=quiet) -> tuple[dict, list[str]]:
    """{(name, rate tuple): [prefixes]} from a deck, and every problem with its line."""
    problems: list[str] = []
    groups: dict[tuple, list[str]] = {}
    seen: dict[str, int] = {}
    with open(path, "rb") as f:
        rows = sum(1 for _ in f) - 1
    bar = progress("reading the deck", rows)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return {}, [f"{path}:1: the deck is empty"]
        cols, problems = _columns(header, str(path))
        if problems:
            return {}, problems
        for row in reader:
            line = reader.line_num
            if line % 10000 == 0:
                bar.advance(10000)
            if not row or not "".join(row).strip():
                continue
            prefix = row[cols["prefix"]].strip().lstrip("+") if cols["prefix"] < len(row) else ""
            name = row[cols["destination"]].strip() if cols["destination"] < len(row) else ""
            if not re.fullmatch(r"[0-9]{1,32}", prefix):
                problems.append(f"{path}:{line}: prefix {prefix!r} is not 1 to 32 digits")
                continue
            problem = label_problem(name, "destination name")
            if problem is not None:
                problems.append(f"{path}:{line}: {problem}")
                continue
            if prefix in seen:
                problems.append(f"{path}:{line}: prefix {prefix} repeats line {seen[prefix]}")
                continue
            rate = _row_rate(row, cols, str(path), line, problems)
            if rate is None:
                continue
            seen[prefix] = line
            groups.setdefault((name, rate), []).append(prefix)
    bar.finish()
    return groups, problems


def compress(prefixes: list[str]) -> list[str]:
    """Sorted prefixes with runs of 3+ consecutive equal-length numbers as ranges."""
    out = []
    items = sorted(prefixes, key=lambda p: (len(p), p))
    i = 0
    while i < len(items):
        j = i
        while (j + 1 < len(items) and len(items[j + 1]) == len(items[i])
               and int(items[j + 1]) == int(items[j]) + 1):
            j += 1
        if j - i >= 2:
            out.append(f"{items[i]}-{items[j]}")
        else:
            out.extend(items[i:j + 1])
        i = j + 1
    return out


def _quote(text: str) -> str:
    """A YAML double-quoted scalar (a JSON string is one): nothing in it can end
    the line or the value, whatever the deck or the command line held."""
    return json.dumps(text, ensure_ascii=False)


def to_yaml(groups: dict, tariff: str, currency: str, valid_from: str, plan: str = "standard",
            decimals: int = 4, rounding: str = "up", initial: int = 60, increment: int = 6,
            source: str = "") -> str:
    """A complete, loadable tariff file for the deck."""
    names: dict[str, int] = {}
    entries = []
    for (name, rate), prefixes in sorted(groups.items(), key=lambda kv: kv[0][0]):
        names[name] = names.get(name, 0) + 1
        dest = name if names[name] == 1 else f"{name} #{names[name]}"
        entries.append((dest, rate, prefixes))
    lines = [f"# Imported from the rate deck {source} by `kondge tariffs import-csv`.",
             "# Check it with `kondge tariffs validate`, then `kondge tariffs load` it.",
             f"tariff: {_quote(tariff)}", f"valid_from: {_quote(valid_from)}",
             f"currency: {_quote(currency)}",
             f"decimals: {decimals}", f"rounding: {rounding}",
             f"defaults: {{connect: 0, minimum: 0, initial: {initial}, increment: {increment}}}",
             "destinations:"]
    for dest, _rate, prefixes in entries:
        lines.append(f"  {_quote(dest)}: [{', '.join(compress(prefixes))}]")
    lines += ["plans:", f"  - name: {_quote(plan)}", "    priority: 0", "    rates:"]
    for dest, (per_minute, connect, minimum, ini, inc), _ in entries:
        extra = "".join(f", {k}: {v}" for k, v in (("connect", connect), ("minimum", minimum),
                                                   ("initial", ini), ("increment", inc))
                        if v is not None)
        lines.append(f"      - {{destination: {_quote(dest)}, per_minute: {per_minute}{extra}}}")
    return "\n".join(lines) + "\n"
