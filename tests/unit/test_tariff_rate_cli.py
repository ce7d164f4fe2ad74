"""`kondge rate` on a tariff file: numbers as dialled, --at on the tariff's clock,
surcharges in the breakdown, refusals."""

import json
from pathlib import Path
from textwrap import dedent

import pytest

from kondge_billing import cli

HOME = Path(__file__).resolve().parents[2]
DEMO = str(HOME / "tariffs" / "demo.yaml")

BERLIN = dedent("""\
    tariff: berlin
    valid_from: 2026-01-01
    currency: EUR
    decimals: 4
    timezone: Europe/Berlin
    defaults: {initial: 1, increment: 1}
    destinations: {Germany: [49], UK: [44]}
    bands:
      night: {days: [mon, tue, wed, thu, fri, sat, sun], hours: "00:00-02:30"}
      day: {days: [mon, tue, wed, thu, fri, sat, sun], hours: "02:30-24:00"}
    plans:
      - name: standard
        rates:
          - {destination: [Germany, UK], band: night, per_minute: 0.01}
          - {destination: [Germany, UK], band: day, per_minute: 1.00}
    surcharges:
      - {name: toll-free entry, match: {access: ["1800"]}, per_minute: 0.03, connect: 0.05}
      - {name: mobile callers, match: {callers: ["447"]}, per_minute: 0.02}
    """)


def kondge(capsys, *argv):
    """(exit status, stdout, stderr) of `kondge ARGV`, argparse's exits included."""
    try:
        status = cli.main(list(argv))
    except SystemExit as exc:
        status = exc.code
    out = capsys.readouterr()
    return status, out.out, out.err


@pytest.fixture
def berlin(tmp_path):
    path = tmp_path / "berlin.yaml"
    path.write_text(BERLIN)
    return str(path)


@pytest.mark.parametrize("number", [
    "447911123456", "+447911123456", "+44 7911 123456", "0044-7911-123456",
    "+44-7911-123-456", "(44) 7911.123456", " 00447911123456 "])
def test_numbers_are_read_as_dialled(capsys, number):
    status, out, err = kondge(capsys, "rate", "--to", number, "--seconds", "125",
                              "--tariff-file", DEMO, "--json")
    assert status == 0, err
    found = json.loads(out)
    assert (found["destination"], found["prefix"], found["cost"]) == (
        "UK mobile", "4479", "0.3150")


@pytest.mark.parametrize("option, number", [
    ("--to", "44x7911"), ("--to", "+44 79II 123456"), ("--to", "+"), ("--to", "00"),
    ("--to", "44+7911"), ("--from", "anonymous"), ("--access", "1-800-FLOWERS")])
def test_letters_are_refused_as_wrong_usage(capsys, option, number):
    argv = ["rate", "--seconds", "5", "--tariff-file", DEMO]
    for key, value in {"--to": "4420", option: number}.items():
        argv += [key, value]
    status, _, err = kondge(capsys, *argv)
    assert status == 2
    assert f"argument {option}: {number!r} is not a phone number" in err


def test_caller_and_access_number_are_normalised_for_the_surcharges(capsys, berlin):
    status, out, err = kondge(capsys, "rate", "--to", "+49 30 1234567", "--seconds", "60",
                              "--access", "+1 (800) 555-0100", "--from", "0044 7911 123456",
                              "--at", "2026-03-03T12:00+01:00", "--tariff-file", berlin,
                              "--json")
    assert status == 0, err
    found = json.loads(out)
    assert [s["name"] for s in found["surcharges"]] == ["toll-free entry", "mobile callers"]
    assert found["cost"] == "1.1000"              # 0.05 + 60 s at 1.00 + 0.03 + 0.02
    assert found["segments"] == [{"band": "day", "step": 0, "start": 0, "end": 60,
                                  "per_minute": "1.00", "surcharge": "0.05"}]


def test_the_breakdown_names_each_surcharge(capsys, berlin):
    status, out, err = kondge(capsys, "rate", "--to", "4930123", "--seconds", "60",
                              "--access", "18005550100", "--at", "2026-03-03T12:00Z",
                              "--tariff-file", berlin)
    assert status == 0, err
    for words in ("surcharge toll-free entry: +0.03/min, +0.05 connect for access 1800",
                  "1.00/min + 0.03/min surcharges  = 1.03",
                  "connect charge 0.05 (rate 0, surcharges 0.05)",
                  "rounded up to 4 decimals: 1.0800 EUR"):
        assert words in out


@pytest.mark.parametrize("at, start", [
    ("2026-03-29T01:59", "2026-03-29T01:59:00+01:00"),          # no offset: Berlin's clock
    ("2026-03-29T00:59:00+00:00", "2026-03-29T01:59:00+01:00"),  # an offset: as given
    ("2026-03-29T00:59Z", "2026-03-29T01:59:00+01:00"),
    ("2026-03-29T03:00", "2026-03-29T03:00:00+02:00"),
])
def test_at_without_an_offset_is_read_on_the_tariffs_clock(capsys, berlin, at, start):
    status, out, err = kondge(capsys, "rate", "--to", "4930123", "--seconds", "120",
                              "--at", at, "--tariff-file", berlin, "--json")
    assert status == 0, err
    found = json.loads(out)
    assert (found["at"], found["timezone"]) == (start, "Europe/Berlin")
    if start.startswith("2026-03-29T01:59"):       # 60 s of night, then day (the jump)
        assert [(s["band"], s["end"] - s["start"]) for s in found["segments"]] == [
            ("night", 60), ("day", 60)]


@pytest.mark.parametrize("at, words", [
    ("2026-03-29T02:30", "does not exist in Europe/Berlin"),
    ("2026-10-25T02:30", "happens twice in Europe/Berlin; give its offset: "
                         "2026-10-25T02:30:00+02:00 or 2026-10-25T02:30:00+01:00"),
])
def test_a_local_time_the_clocks_skip_or_repeat_is_refused(capsys, berlin, at, words):
    status, _, err = kondge(capsys, "rate", "--to", "4930123", "--seconds", "60",
                            "--at", at, "--tariff-file", berlin)
    assert status == 1 and words in err
    status, _, err = kondge(capsys, "rate", "--to", "4930123", "--seconds", "60",
                            "--at", at + "+01:00", "--tariff-file", berlin)
    assert status == 0, err


def test_a_call_the_engine_cannot_rate_is_refused(capsys):
    status, _, err = kondge(capsys, "rate", "--to", "4420", "--seconds", "10000001",
                            "--tariff-file", DEMO)
    assert status == 1 and "cannot rate this call" in err and "at most 10000000" in err


def test_import_csv_refuses_a_deck_it_could_not_write_validly(capsys, tmp_path):
    deck, out = tmp_path / "deck.csv", tmp_path / "deck.yaml"
    deck.write_text('prefix,destination,rate\n44,"UK\nfixed",0.05\n33,France,0.05\n')
    status, _, err = kondge(capsys, "tariffs", "import-csv", str(deck), "--tariff", "carrier",
                            "--currency", "EUR", "--valid-from", "2026-01-01", "--out", str(out))
    assert status == 1 and "control character" in err and "nothing written" in err
    assert not out.exists()
    status, _, err = kondge(capsys, "tariffs", "import-csv", str(deck), "--tariff", "car rier",
                            "--currency", "EUR", "--valid-from", "2026-01-01", "--out", str(out))
    assert status == 1 and not out.exists()
    deck.write_text("prefix,destination,rate\n44,UK fixed,0.05\n33,France,0.05\n")
    status, _, err = kondge(capsys, "tariffs", "import-csv", str(deck), "--tariff", "carrier",
                            "--currency", "EUR", "--valid-from", "2026-01-01", "--out", str(out))
    assert status == 0, err
    assert kondge(capsys, "tariffs", "validate", str(out))[0] == 0
