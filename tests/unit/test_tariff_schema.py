"""Tariff files: the examples validate; a broken file reports every mistake with its line."""

from pathlib import Path
from textwrap import dedent

import pytest

from kondge_billing.tariffs import csv_import, diff, schema
from kondge_billing.tariffs.resolve import context_for, select_plan

HOME = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["demo.yaml", "example.yaml"])
def test_the_example_files_validate(name):
    doc, problems = schema.parse_file(HOME / "tariffs" / name)
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
    (18, "increment: 0 must be at least 1"),
    (19, "unknown band 'lunch'"),
    (20, "plans a (line 13) and b both match"),
])
def test_a_broken_file_reports_every_mistake_with_its_line(line, words):
    doc, problems = schema.parse(BROKEN, "broken.yaml")
    assert any(p.startswith(f"broken.yaml:{line}: ") and words in p for p in problems), problems


def test_gaps_in_the_bands_and_missing_band_rates_are_reported():
    text = (BROKEN.replace('"19:00-08:00"', '"21:00-08:00"').replace("-0.05", "0.05")
            .replace("increment: 0", "increment: 6"))
    _, problems = schema.parse(text, "b.yaml")
    assert any("no band covers mon from 20:00" in p for p in problems)
    assert any("plan a: destination UK has no rate for band(s) weekend" in p
               for p in problems)


@pytest.mark.parametrize("text, words", [
    ("tariff: x\n", "valid_from: missing"),
    ("tariff: [x\n", "not valid YAML"),
    ("", "empty"),
])
def test_hopeless_files(text, words):
    _, problems = schema.parse(text, "h.yaml")
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
    doc, problems = schema.parse(PLANS, "p.yaml")
    assert problems == []
    assert select_plan(doc, **call).name == plan
    assert context_for(doc, "4420", **call).plan == plan


def test_diff_names_every_changed_rate():
    old, _ = schema.parse(PLANS, "old.yaml")
    new, _ = schema.parse(PLANS.replace("per_minute: 0.01", "per_minute: 0.02"), "new.yaml")
    changes = diff.diff_docs(old, new)
    assert [(c["plan"], c["destination"]) for c in changes["rates"]] == [("gold", "UK")]
    assert "0.02/min" in changes["rates"][0]["new"]


def test_csv_deck_becomes_a_valid_tariff(tmp_path):
    deck = tmp_path / "deck.csv"
    deck.write_text("Code,Destination,Rate\n44,UK,0.05\n4470,UK mobile,0.15\n"
                    "4471,UK mobile,0.15\n4472,UK mobile,0.15\n4479,UK mobile,0.15\n"
                    "336,France mobile,0.10\n337,France mobile,0.12\n")
    groups, problems = csv_import.read_deck(deck)
    assert problems == []
    text = csv_import.to_yaml(groups, "carrier", "EUR", "2026-01-01")
    assert "[4470-4472, 4479]" in text
    doc, problems = schema.parse(text, "deck.yaml")
    assert problems == [] and len(doc.prefixes) == 7
    assert context_for(doc, "3370000").destination == "France mobile #2"


def test_csv_deck_problems_carry_their_line(tmp_path):
    deck = tmp_path / "deck.csv"
    deck.write_text("prefix,destination,rate\n44,UK,0.05\n44,UK,0.05\nx1,Bad,0.1\n"
                    "33,France,-1\n")
    _, problems = csv_import.read_deck(deck)
    assert [p.split(": ")[0] for p in problems] == [f"{deck}:3", f"{deck}:4", f"{deck}:5"]
