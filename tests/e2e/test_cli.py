"""The kondge tool as an operator and a script use it."""

import json

import pytest


def test_gateway_lifecycle_and_json(service):
    r = service.kondge("gateways", "add", "--name", "cli-gw", "--address", "127.0.0.20",
                       "--secret", "s3cret", "--dialect", "quintum")
    assert r.returncode == 0 and "cli-gw" in r.stdout
    listed = json.loads(service.kondge("gateways", "list", "--json").stdout)
    mine = [g for g in listed if g["name"] == "cli-gw"]
    assert mine and mine[0]["dialect"] == "quintum" and mine[0]["secret"] == "********"
    assert "s3cret" not in service.kondge("gateways", "list").stdout
    again = service.kondge("gateways", "add", "--name", "cli-gw", "--address", "127.0.0.21",
                           "--secret", "x", "--dialect", "cisco")
    assert again.returncode == 1 and "exists already" in again.stderr
    assert service.kondge("gateways", "remove", "cli-gw").returncode == 0
    missing = service.kondge("gateways", "remove", "cli-gw")
    assert missing.returncode == 1 and "no gateway named cli-gw" in missing.stderr


def test_bad_gateway_reports_every_problem(service):
    r = service.kondge("gateways", "add", "--name=-bad", "--address", "300.1.1.1",
                       "--secret", 'has"quote', "--dialect", "cisco")
    assert r.returncode == 1
    for word in ("name:", "address:", "secret:"):
        assert word in r.stderr


def test_card_add_show_and_refusals(service):
    # a card is in its category's currency (standard is in USD)
    assert service.kondge("categories", "add", "cli-eur", "--currency", "EUR").returncode == 0
    r = service.kondge("cards", "add", "--number", "3000000004", "--pin", "4321",
                       "--balance", "7.25", "--currency", "EUR", "--category", "cli-eur",
                       "--language", "fr", "--json")
    assert r.returncode == 0, r.stderr
    card = json.loads(r.stdout)
    assert card["balance"] == "7.25" and card["currency"] == "EUR" and card["ledger_sum"] == "7.25"
    assert "pin" not in json.dumps(card).lower()
    shown = json.loads(service.kondge("cards", "show", "3000000004", "--json").stdout)
    assert shown["language"] == "fr"
    bad = service.kondge("cards", "add", "--number", "12", "--pin", "x", "--balance", "-1",
                         "--currency", "EUR")
    assert bad.returncode == 1
    for word in ("card number", "PIN", "balance"):
        assert word in bad.stderr
    assert service.kondge("cards", "show", "3999999999").returncode == 1


def test_database_unavailable_exits_3(service):
    env = dict(service.env, KONDGE_DSN="host=/nonexistent port=1 dbname=x user=x")
    r = service.kondge("cards", "show", "3000000004", env=env)
    assert r.returncode == 3 and "make start" in r.stderr


def test_usage_errors_exit_2(service):
    assert service.kondge("cards", "add", "--number", "1").returncode == 2
    assert service.kondge("gateways", "add", "--name", "x", "--address", "127.0.0.1",
                          "--secret", "s", "--dialect", "nortel").returncode == 2


@pytest.mark.parametrize("args", [
    [], ["server"], ["server", "run"], ["gateways", "add"], ["gateways", "list"], ["rate"],
    ["tariffs"], ["tariffs", "validate"], ["tariffs", "load"], ["tariffs", "diff"],
    ["tariffs", "import-csv"], ["tariffs", "list"],
    ["gateways", "remove"], ["cards", "add"], ["cards", "show"], ["cdrs", "list"]])
def test_every_command_has_help(service, args):
    r = service.kondge(*args, "--help")
    assert r.returncode == 0 and "usage: kondge" in r.stdout


@pytest.mark.parametrize("args, says", [
    (["callers", "bind", "--card", "3999999999", "15551230000"], "no card 3999999999"),
    (["cards", "suspend"], "say which cards"),
    (["cards", "issue", "--category", "nope", "--count", "1", "--out", "{tmp}/x.xlsx"],
     "no category nope"),
    (["cards", "refill", "--card", "3999999999", "--voucher", "999", "--pin", "1"],
     "voucher 999: no such voucher"),
    (["cards", "statement", "3999999999", "--from", "2026-01-01", "--to", "2026-02-01",
      "--out", "{tmp}/s.pdf"], "no card 3999999999"),
    (["categories", "modify", "nope", "--max-calls", "2"], "no category nope"),
], ids=["CallerError", "BatchError", "IssueError", "RefillError", "StatementError",
        "CategoryError"])
def test_a_domain_error_is_refused_with_its_message(service, tmp_path, args, says):
    r = service.kondge(*[a.format(tmp=tmp_path) for a in args])
    assert (r.returncode, r.stdout) == (1, "") and r.stderr.startswith(f"kondge: {says}")
    assert "Traceback" not in r.stderr


def test_a_missing_pin_key_is_refused(service, tmp_path):
    env = dict(service.env, KONDGE_PIN_KEY=str(tmp_path / "no.key"))
    r = service.kondge("cards", "add", "--number", "3000000020", "--pin", "1234",
                       "--balance", "1.00", "--currency", "USD", env=env)
    assert r.returncode == 1 and r.stderr.startswith("kondge: cannot read the PIN key")


def test_status_reports_running_service(service):
    r = service.kondge("server", "status", "--json")
    st = json.loads(r.stdout)
    assert r.returncode == 0 and st["postgresql"] and st["freeradius_pid"]


def test_operator_role_issues_cards_but_cannot_load_tariffs(service, tmp_path):
    env = dict(service.env, KONDGE_DB_USER="kondge_operator")
    demo = service.settings.home / "tariffs" / "demo.yaml"
    refused = service.kondge("tariffs", "load", str(demo), env=env)
    assert refused.returncode == 1 and "permission denied" in refused.stderr
    added = service.kondge("cards", "add", "--number", "3000000012", "--pin", "1111",
                           "--balance", "1.00", "--currency", "USD", env=env)
    assert added.returncode == 0, added.stderr
