"""The rules a gateway's settings follow (kondge_billing/store/gateways.py, RULES):
what `kondge gateways add` and `modify` refuse, with a message that names
the setting and never quotes a secret, and the same rules applied to a
stored gateway (what the server will not serve)."""

import pytest

from kondge_billing.store import gateways
from kondge_billing.store.gateways import Gateway, GatewayError


def gw(**changes):
    fields = dict(id=4, name="ny-1", address="192.0.2.7", secret="s3cret", dialect="cisco",
                  message_authenticator="optional", billed_leg="originate",
                  prepaid_billing_model=1)
    fields.update(changes)
    return Gateway(**fields)


def test_a_valid_gateway_breaks_no_rule():
    assert gateways.problems(gw()) == []
    assert gateways.problems(gw(address="2001:db8::7", language_map={"zh": "ch", "es": "sp"},
                                country_code="44", national_prefix="0",
                                accounting_start="answer", secret="a${b}'c#}{")) == []


@pytest.mark.parametrize("secret", [
    "${", "a${b}", "it's", "#", "}", "$ENV{HOME}", "%{User-Name}", "x" * 128, "!~"])
def test_secrets_freeradius_reads_as_given_are_accepted(secret):
    """Single-quoted in clients.conf, none of these expands or ends early."""
    assert gateways.check("ny-1", "192.0.2.7", secret, "cisco", "optional") == []


@pytest.mark.parametrize("secret", [
    "", "x" * 129, "back\\slash", 'dq"', "new\nline", "tab\t", "sp ace", "caf\u00e9",
    "nul\x00", "\u2018q\u2019"])
def test_bad_secrets_are_refused_without_quoting_them(secret):
    problems = gateways.check("ny-1", "192.0.2.7", secret, "cisco", "optional")
    assert len(problems) == 1 and problems[0].startswith("secret: 1 to 128 printable ASCII")
    if secret:
        assert secret not in problems[0]


@pytest.mark.parametrize("name", ["", "-x", "a b", "a\nb", "caf\u00e9", "a'b", "x" * 64,
                                  "${x}", "a}b", "#a"])
def test_bad_names_are_refused(name):
    assert [p.split(":")[0] for p in gateways.check(name, "192.0.2.7", "s", "cisco",
                                                    "optional")] == ["name"]


@pytest.mark.parametrize("address", ["gw.example.com", "0.0.0.0", "::", "224.0.0.1",
                                     "10.0.0.0/8", "10.0.0.1 } client x {", ""])
def test_bad_addresses_are_refused(address):
    assert [p.split(":")[0] for p in gateways.check("ny-1", address, "s", "cisco",
                                                    "optional")] == ["address"]


def test_every_problem_is_reported_at_once():
    problems = gateways.check("a b", "nowhere", "", "nokia", "maybe", "both")
    assert [p.split(":")[0] for p in problems] == [
        "name", "address", "secret", "dialect", "message authenticator", "billed leg"]


@pytest.mark.parametrize("changes, named", [
    ({"language_map": {"zh": "c h"}}, "language map"),
    ({"language_map": {"zh": 'c"h'}}, "language map"),
    ({"language_map": {"zh": "ch,es=sp"}}, "language map"),
    ({"language_map": {"zh": "\u4e2d"}}, "language map"),
    ({"language_map": {"zh": ""}}, "language map"),
    ({"language_map": {"zh": "x" * 17}}, "language map"),
    ({"language_map": {"Chinese": "ch"}}, "language map"),
    ({"country_code": "4a"}, "country code"),
    ({"international_prefix": "00000"}, "international prefix"),
    ({"national_prefix": "0\n"}, "national prefix"),
    ({"billed_leg": "both"}, "billed leg"),
    ({"accounting_start": "later"}, "accounting start"),
    ({"message_authenticator": "yes"}, "message authenticator"),
    ({"prepaid_billing_model": 2}, "prepaid billing model"),
    ({"secret": "new"}, "secret: not a setting"),
    ({"address": "192.0.2.8"}, "address: not a setting"),
])
def test_modify_refuses_a_bad_value_before_touching_the_database(changes, named):
    class NoDatabase:
        def execute(self, *args):
            raise AssertionError("a refused change reached the database")
    with pytest.raises(GatewayError) as refused:
        gateways.modify(NoDatabase(), "ny-1", **changes)
    assert str(refused.value).startswith(named)


def test_a_stored_gateway_is_checked_setting_by_setting():
    bad = gw(secret="hunter2\\", language_map={"en": "x y"}, billed_leg="both")
    problems = gateways.problems(bad)
    assert [p.split(":")[0] for p in problems] == ["secret", "billed leg", "language map"]
    assert not any("hunter2" in p for p in problems)


def test_a_gateway_is_labelled_by_its_name_or_by_its_id_with_the_name_escaped():
    assert gateways.label(gw()) == "ny-1"
    assert gateways.label(gw(name="a\nb\u00e9")) == "#4 'a\\nb\\xe9'"
    assert len(gateways.label(gw(name="\n" * 500))) < 80
