"""The kondge command line as cli.py builds it from kondge_billing/commands/:
every group and command answers --help, and one table ends every command."""

import argparse
import pkgutil

import psycopg2.errors
import pytest

from kondge_billing.store import (batches, callers, cards, categories, gateways, issuance,
                                  statements, vouchers)
from kondge_billing import cli, commands
from kondge_billing.operations import stack
from kondge_billing.commands import audit as audit_commands
from kondge_billing.commands.common import CommandError
from kondge_billing.errors import Unavailable
from kondge_billing.store.pins import PinKeyError
from kondge_billing.rating.engine import RatingError


def walk(parser, path=()):
    """(argv, parser) of the top parser and of every group and command under it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, path + (name,))


EVERY = [path for path, _ in walk(cli.build_parser())]
LEAVES = [path for path, p in walk(cli.build_parser()) if p.get_default("func")]


def test_the_groups_in_the_order_kondge_help_lists_them():
    top = cli.build_parser()
    names = [path[0] for path in EVERY if len(path) == 1]
    assert names == ["server", "gateways", "callers", "access-numbers", "cards", "sessions",
                     "categories", "vouchers", "audit", "cdrs", "accounting", "tariffs", "rate",
                     "backup", "restore", "ha"]
    assert top.get_default("func") is None and len(LEAVES) == 69


def test_every_module_of_the_package_is_registered():
    found = {m.name for m in pkgutil.iter_modules(commands.__path__)} - {"common"}
    assert found == {m.__name__.rpartition(".")[2] for m in commands.GROUPS}


@pytest.mark.parametrize("path", EVERY, ids=lambda p: " ".join(p) or "kondge")
def test_every_group_and_command_has_help_naming_its_options(capsys, path):
    parser = dict(walk(cli.build_parser()))[path]
    with pytest.raises(SystemExit) as ended:
        cli.main([*path, "--help"])
    out = capsys.readouterr().out
    assert ended.value.code == 0 and out.startswith(f"usage: kondge {' '.join(path)}".rstrip())
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            assert not any(o in out for o in action.option_strings), action.option_strings
        elif isinstance(action, argparse._SubParsersAction):
            assert all(name in out for name in action.choices)
        elif action.option_strings:
            assert any(o in out for o in action.option_strings), action.option_strings
        else:
            assert (action.metavar or action.dest) in out


@pytest.mark.parametrize("path", LEAVES, ids=" ".join)
def test_every_command_has_a_handler_and_takes_json(path):
    parser = dict(walk(cli.build_parser()))[path]
    assert callable(parser.get_default("func"))
    assert "--json" in parser._option_string_actions


DOMAIN_ERRORS = [CommandError, PinKeyError, cards.CardError, categories.CategoryError,
                 gateways.GatewayError, batches.BatchError, issuance.IssueError,
                 vouchers.RefillError, callers.CallerError, statements.StatementError]


@pytest.mark.parametrize("error", DOMAIN_ERRORS, ids=lambda e: e.__name__)
def test_a_domain_error_is_a_refusal_exit_1_with_its_message(error):
    assert cli.outcome(error("what was wrong")) == (1, "what was wrong")


@pytest.mark.parametrize("exc, status, message", [
    (RatingError("a rate of 1e400"), 1, "cannot rate this call: a rate of 1e400"),
    (psycopg2.errors.InsufficientPrivilege("permission denied for table tariff\n"), 1,
     "the database refused: permission denied for table tariff"),
    (Unavailable("cannot connect to the database"), 3,
     "cannot connect to the database\nkondge: is the service running? 'make start' starts it"),
    (psycopg2.OperationalError("server closed the connection\n"), 3,
     "database unavailable: server closed the connection"),
    (stack.StackError("PostgreSQL did not start"), 3, "PostgreSQL did not start"),
])
def test_what_else_ends_a_command(exc, status, message):
    assert cli.outcome(exc) == (status, message)


@pytest.mark.parametrize("error", DOMAIN_ERRORS + [RatingError], ids=lambda e: e.__name__)
def test_main_ends_a_command_that_raises_through_the_table(monkeypatch, capsys, error):
    def refused(args, settings):
        raise error("no such thing")
    monkeypatch.setattr(audit_commands, "cmd_list", refused)
    assert cli.main(["audit", "list"]) == 1
    assert capsys.readouterr().err == f"kondge: {cli.outcome(error('no such thing'))[1]}\n"


def test_a_fault_is_not_a_refusal(monkeypatch):
    def broken(args, settings):
        raise KeyError("a bug")
    monkeypatch.setattr(audit_commands, "cmd_list", broken)
    assert cli.outcome(KeyError("a bug")) is None
    with pytest.raises(KeyError):
        cli.main(["audit", "list"])


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path):
    """`kondge tariffs import-csv ... | head`: no traceback, the SIGPIPE status
    (`true` reads nothing and is gone before the command writes)."""
    import subprocess
    import sys
    from pathlib import Path
    deck = tmp_path / "deck.csv"
    deck.write_text("prefix,destination,rate\n" + "".join(
        f"{p},Place {p},0.{p % 90 + 10}\n" for p in range(100000, 130000, 2)))
    result = subprocess.run(
        f"{sys.executable} -m kondge_billing.cli tariffs import-csv {deck} --tariff t "
        "--currency USD --valid-from 2026-01-01 | true; "
        "echo \"${PIPESTATUS[0]}\"", shell=True, executable="/bin/bash", capture_output=True,
        text=True, cwd=Path(__file__).resolve().parents[2])
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout.split() == ["141"], result.stdout


@pytest.mark.parametrize("digits", ["\u00b9-5", "1-\u0665"])
def test_a_range_in_other_digits_is_refused_before_the_database(capsys, digits):
    """"¹" passes str.isdigit() and int() refuses it: a refusal that says the
    form, not a traceback (and nothing is asked of the database)."""
    status = cli.main(["cards", "suspend", "--serials", digits])
    assert (status, capsys.readouterr().err) == (
        cli.outcome(CommandError("x"))[0], "kondge: --serials: FIRST-LAST, e.g. 100001-100500\n")


def test_a_destination_prefix_in_other_digits_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(["cdrs", "list", "--destination", "\u0664\u0664"])
    assert exited.value.code == 2 and "is not digits" in capsys.readouterr().err
