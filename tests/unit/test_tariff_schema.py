"""Tariff files: the examples validate; a broken file reports every mistake with its line."""

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from textwrap import dedent

import pytest

from kondge_billing.rating import rate_deck, diff, engine, tariff_file
from kondge_billing.rating.resolve import context_for, select_plan

HOME = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 3, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("name", ["demo.yaml", "example.yaml"])
def test_the_example_files_validate(name):
    doc, problems = tariff_file.parse_file(HOME / "tariffs" / name)
    assert problems == [] and doc.plans


BROKEN = dedent("""\
    tariff: broken
    valid_from: 2026-01-01
    currency: usd
    rounding: sideways
    destinations:
      UK: [44]
      UK mobile: [4470-4479, 44]
    bands:
      peak: {days: [mon, tue, wed, thu, fri], hours: "08:00-20:00"}
      evening: {days: [mon, tue, wed, thu, fri], hours: "19:00-08:00"}
      weekend: {days: [sat, sun]}
    plans:
      - name: a
        priority: 1
        rates:
          - {destination: Narnia, per_minute: 0.1, increment: 6}
          - {destination: UK, band: peak, per_minute: -0.05, increment: 6}
          - {destination: UK, band: evening, per_minute: 0.05, increment: 0}
          - {destination: UK, band: lunch, per_minute: 0.05, increment: 6}
      - name: b
        priority: 1
        match: {callers: ["44"]}
        rates:
          - {destination: UK mobile, per_minute: 0.1, increment: 6}
    """)


@pytest.mark.parametrize("line, words", [
    (3, "currency"),
    (4, "rounding"),
    (7, "prefix 44 is already in destination UK"),
    (10, "overlaps band peak"),
    (16, "unknown destination 'Narnia'"),
    (17, "negative price"),
    (18, "increment: 0 must be from 1 to 86400"),
    (19, "unknown band 'lunch'"),
    (20, "plans a (line 13) and b both match"),
])
def test_a_broken_file_reports_every_mistake_with_its_line(line, words):
    doc, problems = tariff_file.parse(BROKEN, "broken.yaml")
    assert any(p.startswith(f"broken.yaml:{line}: ") and words in p for p in problems), problems


def test_gaps_in_the_bands_and_missing_band_rates_are_reported():
    text = (BROKEN.replace('"19:00-08:00"', '"21:00-08:00"').replace("-0.05", "0.05")
            .replace("increment: 0", "increment: 6"))
    _, problems = tariff_file.parse(text, "b.yaml")
    assert any("no band covers mon from 20:00" in p for p in problems)
    assert any("plan a: destination UK has no rate for band(s) weekend" in p
               for p in problems)


@pytest.mark.parametrize("text, words", [
    ("tariff: x\n", "valid_from: missing"),
    ("tariff: [x\n", "not valid YAML"),
    ("", "empty"),
])
def test_hopeless_files(text, words):
    _, problems = tariff_file.parse(text, "h.yaml")
    assert problems and words in " ".join(problems)


PLANS = dedent("""\
    tariff: plans
    valid_from: 2026-01-01
    currency: USD
    defaults: {increment: 6}
    destinations: {UK: [44]}
    plans:
      - {name: base, priority: 0, rates: [{destination: UK, per_minute: 0.05}]}
      - name: gold
        priority: 10
        match: {categories: [gold]}
        rates: [{destination: UK, per_minute: 0.01}]
      - name: tollfree
        priority: 5
        match: {access: ["1800"], gateways: [ny-1]}
        rates: [{destination: UK, per_minute: 0.08}]
      - name: uk-callers
        priority: 3
        match: {callers: ["44"]}
        rates: [{destination: UK, per_minute: 0.04}]
    """)


@pytest.mark.parametrize("call, plan", [
    ({}, "base"),
    ({"category": "gold", "access": "18005550100", "gateway": "ny-1"}, "gold"),
    ({"access": "18005550100", "gateway": "ny-1", "caller": "447700"}, "tollfree"),
    ({"access": "18005550100", "gateway": "other"}, "base"),
    ({"caller": "447700900"}, "uk-callers"),
])
def test_plan_selection_by_selectors_and_priority(call, plan):
    doc, problems = tariff_file.parse(PLANS, "p.yaml")
    assert problems == []
    assert select_plan(doc, **call).name == plan
    assert context_for(doc, "4420", **call).plan == plan


def test_diff_names_every_changed_rate():
    old, _ = tariff_file.parse(PLANS, "old.yaml")
    new, _ = tariff_file.parse(PLANS.replace("per_minute: 0.01", "per_minute: 0.02"), "new.yaml")
    changes = diff.diff_docs(old, new)
    assert [(c["plan"], c["destination"]) for c in changes["rates"]] == [("gold", "UK")]
    assert "0.02/min" in changes["rates"][0]["new"]


def test_csv_deck_becomes_a_valid_tariff(tmp_path):
    deck = tmp_path / "deck.csv"
    deck.write_text("Code,Destination,Rate\n44,UK,0.05\n4470,UK mobile,0.15\n"
                    "4471,UK mobile,0.15\n4472,UK mobile,0.15\n4479,UK mobile,0.15\n"
                    "336,France mobile,0.10\n337,France mobile,0.12\n")
    groups, problems = rate_deck.read_deck(deck)
    assert problems == []
    text = rate_deck.to_yaml(groups, "carrier", "EUR", "2026-01-01")
    assert "[4470-4472, 4479]" in text
    doc, problems = tariff_file.parse(text, "deck.yaml")
    assert problems == [] and len(doc.prefixes) == 7
    assert context_for(doc, "3370000").destination == "France mobile #2"


def test_csv_deck_problems_carry_their_line(tmp_path):
    deck = tmp_path / "deck.csv"
    deck.write_text("prefix,destination,rate\n44,UK,0.05\n44,UK,0.05\nx1,Bad,0.1\n"
                    "33,France,-1\n")
    _, problems = rate_deck.read_deck(deck)
    assert [p.split(": ")[0] for p in problems] == [f"{deck}:3", f"{deck}:4", f"{deck}:5"]


@pytest.mark.parametrize("seconds", ["\u00b9", "\u0663\u0660"])
def test_csv_deck_seconds_in_other_digits_are_a_problem_not_a_crash(tmp_path, seconds):
    """"¹" passes str.isdigit() and int() refuses it; "٣٠" int() reads as 30."""
    deck = tmp_path / "deck.csv"
    deck.write_text(f"prefix,destination,rate,increment\n44,UK,0.05,{seconds}\n",
                    encoding="utf-8")
    _, problems = rate_deck.read_deck(deck)
    assert problems == [f"{deck}:2: increment: {seconds!r} is not a positive whole number "
                        "of seconds"]


# --- limits: values the engine cannot price exactly are refused, all at once ---------

LIMITS = dedent("""\
    tariff: limits
    valid_from: 2026-01-01
    currency: USD
    defaults: {increment: 100000, initial: 86401}
    destinations: {UK: [44], US: [1], FR: [33]}
    plans:
      - name: p
        rates:
          - {destination: UK, per_minute: 1e308, increment: 6}
          - {destination: US, per_minute: 0.000000001, increment: 6, initial: 100000000000000000000000000}
          - destination: FR
            connect: 1e30
            minimum: 1000000.00000001
            steps:
              - {seconds: 100000000000000000000, per_minute: 0.1, increment: 6}
              - {per_minute: 0.1, increment: 86401}
    discounts:
      - {name: odd, percent: 12.123456789}
      - {name: much, percent: 150}
    surcharges:
      - {name: big, per_minute: 1000001}
    """)


@pytest.mark.parametrize("line, words", [
    (4, "defaults: increment: 100000 must be from 1 to 86400"),
    (4, "defaults: initial: 86401 must be from 0 to 86400"),
    (9, "per_minute: 1e308 is more than 1,000,000"),
    (10, "per_minute: 0.000000001 has more than 8 decimals"),
    (10, "initial: 100000000000000000000000000 must be from 0 to 86400"),
    (12, "connect: 1e30 is more than 1,000,000"),
    (13, "minimum: 1000000.00000001 is more than 1,000,000"),
    (15, "step 1: seconds: 100000000000000000000 must be from 1 to 86400"),
    (16, "step 2: increment: 86401 must be from 1 to 86400"),
    (18, "discount odd: percent: 12.123456789 has more than 8 decimals"),
    (19, "discount much: percent: 150 is more than 100"),
    (21, "surcharge big: per_minute: 1000001 is more than 1,000,000"),
])
def test_values_beyond_the_limits_are_refused_with_their_line(line, words):
    doc, problems = tariff_file.parse(LIMITS, "limits.yaml")
    assert any(p.startswith(f"limits.yaml:{line}: ") and words in p for p in problems), problems


def test_the_largest_values_within_the_limits_are_accepted():
    text = dedent("""\
        tariff: edge
        valid_from: 2026-01-01
        currency: USD
        decimals: 8
        destinations: {UK: [44]}
        plans:
          - name: p
            rates:
              - destination: UK
                connect: 1000000
                minimum: 0.00000001
                initial: 86400
                steps:
                  - {seconds: 86400, per_minute: 999999.99999999, increment: 86400}
                  - {per_minute: 1000000, increment: 1}
        discounts: [{name: d, percent: 99.99999999}]
        surcharges: [{name: s, per_minute: 1000000, connect: 1000000}]
        """)
    doc, problems = tariff_file.parse(text, "edge.yaml")
    assert problems == []
    ctx = context_for(doc, "4420")
    assert engine.call_cost(ctx, T0, engine.MAX_SECONDS) > 0


def count_limit_file(steps=1, bands=1, stretches=1, discounts=0, surcharges=0) -> str:
    """A valid file but for how many steps, bands, stretches of a day, discounts or
    surcharges it has (bands and stretches are counted on tuesdays)."""
    minutes = [f"{m // 60:02d}:{m % 60:02d}" for m in range(0, 24 * 60 + 1, 10)]
    tuesday = [f'"{minutes[n]}-{minutes[n + 1]}"' for n in range(stretches - 1)]
    tuesday.append(f'"{minutes[stretches - 1]}-24:00"')
    lines = ["tariff: counts", "valid_from: 2026-01-01", "currency: USD",
             "destinations: {UK: [44]}", "bands:",
             '  all: {days: [mon, wed, thu, fri, sat, sun], hours: "00:00-24:00"}']
    lines += [f'  t{n}: {{days: [tue], hours: ["{minutes[n]}-{minutes[n + 1]}"]}}'
              for n in range(bands - 2)]
    lines.append(f"  tue: {{days: [tue], hours: [{', '.join(tuesday[bands - 2:] if bands > 2 else tuesday)}]}}")
    step_lines = ["{seconds: 1, per_minute: 1, increment: 1}"] * (steps - 1) + [
        "{per_minute: 1, increment: 1}"]
    lines += ["plans:", "  - name: p", "    rates:",
              f"      - {{destination: UK, steps: [{', '.join(step_lines)}]}}",
              f"discounts: [{', '.join(f'{{name: d{n}, percent: 1}}' for n in range(discounts))}]",
              f"surcharges: [{', '.join(f'{{name: s{n}, connect: 1}}' for n in range(surcharges))}]"]
    return "\n".join(lines) + "\n"


def test_the_count_limit_file_is_valid():
    assert tariff_file.parse(count_limit_file(), "counts.yaml")[1] == []
    assert tariff_file.parse(count_limit_file(steps=32, bands=24, stretches=48, discounts=32,
                                         surcharges=16), "counts.yaml")[1] == []


@pytest.mark.parametrize("counts, words", [
    ({"steps": 33}, "steps: 33 steps; at most 32"),
    ({"bands": 25, "stretches": 24}, "bands: 25 bands; at most 24"),
    ({"stretches": 49}, "bands: tue is cut into 49 stretches; at most 48"),
    ({"discounts": 33}, "discounts: 33 discounts; at most 32"),
    ({"surcharges": 17}, "surcharges: 17 surcharges; at most 16"),
])
def test_too_many_steps_bands_stretches_discounts_or_surcharges(counts, words):
    _, problems = tariff_file.parse(count_limit_file(**counts), "counts.yaml")
    assert any(words in p for p in problems), problems
    most = {key: value - 1 for key, value in counts.items()}
    assert tariff_file.parse(count_limit_file(**most), "counts.yaml")[1] == []


# --- surcharges ------------------------------------------------------------------------

SURCHARGES = PLANS + dedent("""\
    surcharges:
      - name: toll-free entry
        match: {access: ["1800", "1888"]}
        per_minute: 0.03
        connect: 0.05
      - {name: hotel, match: {gateways: [hotel-1], categories: [gold]}, connect: 0.50}
      - {name: everyone, per_minute: 0.001}
    """)


def test_surcharges_are_read():
    doc, problems = tariff_file.parse(SURCHARGES, "s.yaml")
    assert problems == []
    assert doc.surcharges == (
        engine.Surcharge("toll-free entry", Decimal("0.03"), Decimal("0.05"), ("1800", "1888")),
        engine.Surcharge("hotel", Decimal(0), Decimal("0.50"), gateways=("hotel-1",),
                         categories=("gold",)),
        engine.Surcharge("everyone", Decimal("0.001"), Decimal(0)))


def test_broken_surcharges_report_every_mistake_with_its_line():
    text = PLANS + dedent("""\
        surcharges:
          - {name: a, match: {access: [18x0]}, per_minute: 0.03}
          - {name: b}
          - {per_minute: 0.01}
          - {name: c, per_minute: -0.01, colour: red}
          - {name: a, connect: 0.1, match: {planets: [mars]}}
        """)
    _, problems = tariff_file.parse(text, "s.yaml")
    start = PLANS.count("\n") + 2
    for offset, words in [(0, "surcharge a: match: access: '18x0' is not a number prefix"),
                          (1, "surcharge b: per_minute, connect or both"),
                          (2, "surcharge: name missing"),
                          (3, "surcharge c: per_minute: negative price -0.01"),
                          (3, "surcharge: unknown key 'colour'"),
                          (4, "surcharge a: given twice"),
                          (4, "surcharge a: match: unknown key 'planets'")]:
        assert any(p.startswith(f"s.yaml:{start + offset}: ") and words in p
                   for p in problems), (offset, words, problems)


def test_diff_names_every_changed_surcharge():
    old, _ = tariff_file.parse(SURCHARGES, "old.yaml")
    new, _ = tariff_file.parse(SURCHARGES.replace("per_minute: 0.03", "per_minute: 0.04")
                          .replace("  - {name: everyone, per_minute: 0.001}\n", ""), "new.yaml")
    changes = diff.diff_docs(old, new)
    assert changes["surcharges"] == [
        {"surcharge": "everyone", "change": "removed",
         "old": "+0.001/min for every call", "new": None},
        {"surcharge": "toll-free entry", "change": "changed",
         "old": "+0.03/min, +0.05 connect for access 1800, 1888",
         "new": "+0.04/min, +0.05 connect for access 1800, 1888"}]
    assert changes["rates"] == [] and changes["rules"] == []


# --- hostile files: bounded before parsing, names that stay one line ----------------

@pytest.mark.parametrize("text", [
    "tariff: x\nplans: " + "[" * 50000 + "]" * 50000 + "\n",
    "tariff: x\nplans:\n" + "".join("  " * i + f"k{i}:\n" for i in range(2000)) + "  " * 2000
    + "end\n",
    "a: " + "{b: " * 40 + "c" + "}" * 40 + "\n",
])
def test_deeply_nested_files_are_refused_before_they_are_built(text):
    doc, problems = tariff_file.parse(text, "deep.yaml")
    assert doc is None and len(problems) == 1
    assert f"nested more than {tariff_file.MAX_DEPTH} levels deep" in problems[0]


def test_a_deep_file_on_disk_is_refused_by_validate_and_load_alike(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 50000 + "]" * 50000 + "\n")      # 100 KB
    doc, problems = tariff_file.parse_file(path)
    assert doc is None and "levels deep" in problems[0]


def test_a_file_beyond_the_size_bound_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(tariff_file, "MAX_SOURCE_MB", 1)
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * 2**20 + "\n" + PLANS)
    doc, problems = tariff_file.parse_file(path)
    assert doc is None and "larger than 1 MB" in problems[0]
    doc, problems = tariff_file.parse(PLANS, "small.yaml")                 # within it: read
    assert problems == [] and doc.plans


@pytest.mark.parametrize("name, words", [
    ('"UK\\nmobile"', "control character"),
    ('"UK\\u2028mobile"', "control character"),
    ('"UK\\tmobile"', "control character"),
    ('" UK"', "spaces around it"),
    ('"' + "U" * 101 + '"', "longer than 100"),
])
def test_destination_plan_and_surcharge_names_stay_one_line(name, words):
    for text in (PLANS.replace("{UK: [44]}", "{" + name + ": [44]}").replace(
                     "destination: UK,", f"destination: {name},"),
                 PLANS.replace("name: gold", f"name: {name}"),
                 PLANS + f"surcharges: [{{name: {name}, per_minute: 0.01}}]\n"):
        _, problems = tariff_file.parse(text, "n.yaml")
        assert any(words in p for p in problems), (text, problems)


def test_a_deck_name_with_a_newline_is_a_problem_not_a_broken_file(tmp_path):
    deck = tmp_path / "deck.csv"
    deck.write_text('prefix,destination,rate\n44,"UK\nfixed",0.05\n33,France,0.05\n')
    groups, problems = rate_deck.read_deck(deck)
    assert len(problems) == 1 and "control character" in problems[0]


@pytest.mark.parametrize("field", ["tariff", "currency", "valid_from", "plan"])
def test_what_import_writes_cannot_be_steered_by_its_arguments(field):
    values = {"tariff": "carrier", "currency": "EUR", "valid_from": "2026-01-01",
              "plan": "standard"}
    values[field] += "\ndefault: true"
    text = rate_deck.to_yaml({("UK", (Decimal("0.05"), None, None, None, None)): ["44"]},
                              values["tariff"], values["currency"], values["valid_from"],
                              plan=values["plan"])
    doc, problems = tariff_file.parse(text, "i.yaml")
    assert problems, text                    # refused, never a default tariff by accident
    assert doc is None or not doc.default
