"""The JSON shape: round trips, and the memo of parsed rates and rules."""

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from kondge_billing.tariffs import codec
from kondge_billing.tariffs.engine import Band, Discount, Rate, Step

RULES = {"timezone": "Europe/Berlin",
         "bands": [{"name": "peak", "days": ["mon", "tue"], "minutes": [[480, 1320]]},
                   {"name": "off", "days": ["mon", "tue"], "minutes": [[0, 480], [1320, 1440]]}],
         "holidays": ["2026-12-25"],
         "discounts": [{"name": "gold", "percent": "25", "categories": ["gold"], "bands": None,
                        "from": "2026-12-01T00:00:00+01:00", "until": None}]}


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
                               None),)}
    assert codec.rules_from_json({}) == {"timezone": "UTC", "bands": (), "holidays": frozenset(),
                                         "discounts": ()}


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
