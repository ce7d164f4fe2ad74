"""Caller binding and access-number policies against a real PostgreSQL."""

import pytest

from kondge_billing.store import callers, gateways
from kondge_billing.operations import demo
from kondge_billing.rating.numbers import NumberFormat
from tests.support.cards import new_card

UK = NumberFormat("44", "00", "0")


@pytest.fixture
def world(db, pin_key):
    db.run(lambda cur: demo.load(cur, pin_key))
    return db


def test_a_number_belongs_to_one_card_however_it_is_written(world, pin_key):
    a, b = new_card(world, pin_key), new_card(world, pin_key)
    assert world.run(lambda cur: callers.bind(cur, a, ["07911123456"], UK)) == ["447911123456"]
    for written in ("+447911123456", "00447911123456", "07911 123456"):
        with pytest.raises(callers.CallerError, match="bound to card"):
            world.run(lambda cur: callers.bind(cur, b, [written], UK))
    # binding it again to the same card is harmless
    world.run(lambda cur: callers.bind(cur, a, ["+447911123456"], UK))
    rows = world.run(lambda cur: callers.list_callers(cur))
    assert [(r["caller"], r["card"]) for r in rows] == [("447911123456", a)]
    assert world.run(lambda cur: callers.unbind(cur, ["00447911123456"], UK)) == 1
    assert world.run(lambda cur: callers.list_callers(cur)) == []


def test_bad_numbers_and_unknown_cards_are_refused(world, pin_key):
    with pytest.raises(callers.CallerError, match="not a phone number"):
        world.run(lambda cur: callers.bind(cur, new_card(world, pin_key), ["call-me"], UK))
    with pytest.raises(callers.CallerError, match="no card"):
        world.run(lambda cur: callers.bind(cur, "1999999996", ["447911123456"], UK))


def test_access_number_policy(world):
    row = world.run(lambda cur: callers.add_access_number(cur, "8005550199", login="caller",
                                                          language="zh", prompt_id=3))
    assert (row["login"], row["language"], row["prompt_id"]) == ("caller", "zh", 3)
    with pytest.raises(callers.CallerError, match="exists already"):
        world.run(lambda cur: callers.add_access_number(cur, "8005550199"))
    row = world.run(lambda cur: callers.modify_access_number(cur, "8005550199", login="both"))
    assert row["login"] == "both" and row["language"] == "zh"
    with pytest.raises(callers.CallerError, match="login"):
        world.run(lambda cur: callers.modify_access_number(cur, "8005550199", login="any"))


def test_gateway_number_format_and_language_map(world):
    gw = world.run(lambda cur: gateways.modify(cur, "demo-gw", country_code="44",
                                               national_prefix="0",
                                               language_map={"zh": "ch"}))
    assert gw.number_format == UK and gw.language("zh") == "ch" and gw.language("en") == "en"
    with pytest.raises(gateways.GatewayError):
        world.run(lambda cur: gateways.modify(cur, "demo-gw", country_code="4x"))
