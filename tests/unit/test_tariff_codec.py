"""The JSON shape: round trips, and the memo of parsed rates and rules."""

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kondge_billing.rating import codec
from kondge_billing.rating.engine import Band, Discount, Rate, Step, Surcharge

RULES = {"timezone": "Europe/Berlin",
         "bands": [{"name": "peak", "days": ["mon", "tue"], "minutes": [[480, 1320]]},
                   {"name": "off", "days": ["mon", "tue"], "minutes": [[0, 480], [1320, 1440]]}],
         "holidays": ["2026-12-25"],
         "discounts": [{"name": "gold", "percent": "25", "categories": ["gold"], "bands": None,
                        "from": "2026-12-01T00:00:00+01:00", "until": None}],
         "surcharges": [{"name": "toll-free", "per_minute": "0.03", "connect": "0",
                         "match": {"access": ["1800", "1888"]}},
                        {"name": "hotel", "connect": "0.50", "match": {"gateways": ["hotel-1"]}}]}


def rate_json(connect="0", minimum="0", initial=60, steps=((0, "0.15", 6),)):
    return {"connect": connect, "minimum": minimum, "initial": initial,
            "steps": [{"start": s, "per_minute": p, "increment": i} for s, p, i in steps]}


def test_rules_parse():
    rules = codec.rules_from_json(RULES)
    assert rules == {
        "timezone": "Europe/Berlin",
        "bands": (Band("peak", ("mon", "tue"), ((480, 1320),)),
                  Band("off", ("mon", "tue"), ((0, 480), (1320, 1440)))),
        "holidays": frozenset({date(2026, 12, 25)}),
        "discounts": (Discount("gold", Decimal(25), ("gold",), None,
                               datetime(2026, 12, 1, tzinfo=timezone(timedelta(hours=1))),
                               None),),
        "surcharges": (Surcharge("toll-free", Decimal("0.03"), Decimal(0), ("1800", "1888")),
                       Surcharge("hotel", Decimal(0), Decimal("0.50"), gateways=("hotel-1",)))}
    assert codec.rules_from_json({}) == {"timezone": "UTC", "bands": (), "holidays": frozenset(),
                                         "discounts": (), "surcharges": ()}


def test_remembered_rules_are_a_fresh_dict_each_time():
    first = codec.rules_from_json(RULES)
    first["timezone"] = "changed by a caller"
    assert codec.rules_from_json(RULES)["timezone"] == "Europe/Berlin"


def test_amounts_keep_their_text():
    """0.10 and 0.1 are equal numbers but not the same Decimal: the memo keys on text."""
    a = codec.rate_from_json(rate_json(connect="0.1", steps=((0, "0.1", 6),)))
    b = codec.rate_from_json(rate_json(connect="0.10", steps=((0, "0.10", 6),)))
    assert str(a.connect) == "0.1" and str(b.connect) == "0.10"
    assert str(a.steps[0].per_minute) == "0.1" and str(b.steps[0].per_minute) == "0.10"


def test_a_full_memo_starts_again():
    for n in range(codec.MEMO_SIZE + 10):
        assert codec.rate_from_json(rate_json(initial=n)).initial == n
    assert len(codec._RATES) <= codec.MEMO_SIZE


def test_unhashable_names_are_parsed_without_the_memo():
    rules = dict(RULES, discounts=[dict(RULES["discounts"][0], categories=[["gold"]])])
    assert codec.rules_from_json(rules)["discounts"][0].categories == (["gold"],)


amounts = st.decimals(min_value=Decimal(0), max_value=Decimal(100), places=4).map(str)


@settings(max_examples=200, deadline=None)
@given(amounts, amounts, st.integers(0, 300),
       st.lists(st.tuples(amounts, st.integers(1, 120)), min_size=1, max_size=4))
def test_rate_round_trip(connect, minimum, initial, steps):
    rate = Rate(Decimal(connect), Decimal(minimum), initial,
                tuple(Step(60 * n, Decimal(p), i) for n, (p, i) in enumerate(steps)))
    again = codec.rate_from_json(codec.rate_to_json(rate))
    assert again == rate
    assert [str(s.per_minute) for s in again.steps] == [p for p, _ in steps]
    assert codec.rate_from_json(codec.rate_to_json(rate)) is again      # parsed once


selectors = st.one_of(st.none(), st.lists(st.sampled_from(["1800", "44", "ny-1", "gold"]),
                                          min_size=1, max_size=3).map(tuple))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(amounts, amounts, selectors, selectors, selectors, selectors),
                max_size=4))
def test_surcharges_round_trip_with_money_as_text(specs):
    surcharges = tuple(Surcharge(f"s{n}", Decimal(p), Decimal(c), *match)
                       for n, (p, c, *match) in enumerate(specs))
    rules = codec.rules_to_json("UTC", (), frozenset(), (), surcharges)
    assert all(isinstance(s[k], str) for s in rules["surcharges"] for k in ("per_minute", "connect"))
    again = codec.rules_from_json(codec.loads(json.dumps(rules)))["surcharges"]
    assert again == surcharges
    assert [str(s.per_minute) for s in again] == [p for p, *_ in specs]


CONTEXT = {"tariff": "t", "tariff_id": 1, "version_id": 7, "version": 2, "currency": "USD ",
           "decimals": 4, "rounding": "up", "plan": "p", "category": "gold",
           "destination": "UK", "prefix": "44", "rates": {"*": rate_json()}, "rules": RULES}


def test_the_calls_facts_are_read_when_the_json_has_them():
    ctx = codec.context_from_json(dict(CONTEXT, access_number="18005550100", caller="4930123",
                                       gateway="ny-1"))
    assert (ctx.access_number, ctx.caller, ctx.gateway) == ("18005550100", "4930123", "ny-1")
    assert ctx.surcharges == codec.rules_from_json(RULES)["surcharges"]
    older = codec.context_from_json(json.dumps(CONTEXT))        # as the database gives it now
    assert (older.access_number, older.caller, older.gateway) == (None, None, None)
    assert older.currency == "USD" and older.category == "gold"


def test_a_surcharge_selector_not_understood_is_an_error_not_ignored():
    rules = dict(RULES, surcharges=[{"name": "x", "per_minute": "1", "connect": "0",
                                     "match": {"planets": ["mars"]}}])
    with pytest.raises(ValueError, match="surcharge x: unknown selector"):
        codec.rules_from_json(rules)
