"""Tariffs on the running service: a new version is used without a restart."""

import json
from datetime import datetime, timezone

from kondge_billing.store.pins import load_key
from tests.e2e.test_radius import access
from tests.support.cards import new_card

NEW_VERSION = """\
tariff: demo
default: true
valid_from: 2001-01-01T00:00:00+00:00
currency: USD
defaults: {connect: 0, initial: 60, increment: 6}
destinations:
  USA/Canada: [1]
  UK: [44]
  UK mobile: [4470-4479]
  France: [33]
plans:
  - name: standard
    rates:
      - {destination: USA/Canada, per_minute: 0.02}
      - {destination: UK, per_minute: 0.05}
      - {destination: UK mobile, per_minute: 0.30}
      - {destination: France, per_minute: 0.10}
"""


def test_tariffs_load_is_used_by_the_running_server_without_restart(stack_ready, tmp_path):
    s = stack_ready
    key = load_key(s.settings.pin_key_file)
    # fresh cards: a grant holds its time, and a standard card has one call at a time
    france, uk = new_card(s.db, key), new_card(s.db, key)
    client = s.client("testing123")
    try:
        pid = s.kondge("server", "status", "--json")
        before = json.loads(pid.stdout)["freeradius_pid"]
        assert access(client, "1000000008", "1234", "33123456").h323("h323-return-code") == "9"
        path = tmp_path / "demo-v2.yaml"
        path.write_text(NEW_VERSION)
        loaded = s.kondge("tariffs", "load", str(path), "--json")
        assert loaded.returncode == 0, loaded.stderr
        assert json.loads(loaded.stdout)["version"] >= 2
        # the very next stage 2 uses the new version: France allowed, UK mobile dearer
        grant = access(client, france, "1234", "33123456")
        assert grant.accepted and grant.h323("h323-credit-time") == "6000"      # 10.00 at 0.10
        grant = access(client, uk, "1234", "447911123456")
        assert grant.h323("h323-credit-time") == "1998"                         # 10.00 at 0.30
        after = json.loads(s.kondge("server", "status", "--json").stdout)["freeradius_pid"]
        assert after == before                                                  # no restart
        rated = s.kondge("rate", "--to", "447911123456", "--seconds", "61", "--json")
        assert json.loads(rated.stdout)["cost"] == "0.3300"                     # 66 s at 0.30
    finally:
        # back to the demo prices for the other tests: a version valid from later
        demo = (s.settings.home / "tariffs" / "demo.yaml").read_text()
        path = tmp_path / "demo-v3.yaml"
        path.write_text(demo.replace("valid_from: 2000-01-01", "valid_from: 2002-01-01"))
        restore = s.kondge("tariffs", "load", str(path))
        client.close()
    assert restore.returncode == 0, restore.stderr


def test_a_broken_file_is_refused_with_every_mistake(stack_ready, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(NEW_VERSION.replace("per_minute: 0.10", "per_minute: -0.10")
                    .replace("increment: 6", "increment: 0").replace("France]", "Narnia]"))
    for command in ("validate", "load"):
        r = stack_ready.kondge("tariffs", command, str(path))
        assert r.returncode == 1
        assert f"{path}:5: defaults: increment: 0 must be from 1 to 86400" in r.stderr
        assert f"{path}:17: plan standard: France: per_minute: negative price" in r.stderr
    listed = json.loads(stack_ready.kondge("tariffs", "list", "demo", "--json").stdout)
    assert all(v["source_name"] != str(path) for v in listed)


def test_rate_explains_a_price_and_a_balance(stack_ready):
    r = stack_ready.kondge("rate", "--to", "442071234567", "--seconds", "125",
                           "--at", datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat())
    assert r.returncode == 0, r.stderr
    for words in ("plan standard", "destination UK (prefix 44)", "125 s billed as 126 s",
                  "rounded up to 4 decimals: 0.1050 USD"):
        assert words in r.stdout
    r = stack_ready.kondge("rate", "--to", "447911123456", "--balance", "10.00", "--json")
    assert json.loads(r.stdout)["allowed_seconds"] == 3996
    assert stack_ready.kondge("rate", "--to", "999", "--seconds", "5").returncode == 1
    assert stack_ready.kondge("rate", "--to", "44").returncode == 2


def test_rate_reads_numbers_as_dialled(stack_ready):
    for number in ("+447911123456", "+44 7911 123456", "0044-7911-123456", "(44) 7911 123456"):
        r = stack_ready.kondge("rate", "--to", number, "--seconds", "61", "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["prefix"] == "4479"
    r = stack_ready.kondge("rate", "--to", "+44 79II 123456", "--seconds", "61")
    assert r.returncode == 2 and "is not a phone number" in r.stderr
    r = stack_ready.kondge("rate", "--to", "447911123456", "--from", "anonymous", "--seconds", "1")
    assert r.returncode == 2 and "argument --from" in r.stderr


def test_rate_reads_a_time_without_offset_on_the_tariffs_clock(stack_ready):
    """The example tariff (not the default) is in Europe/Berlin: peak until 22:00."""
    example = stack_ready.settings.home / "tariffs" / "example.yaml"
    if not any(v["tariff"] == "intl" for v in json.loads(
            stack_ready.kondge("tariffs", "list", "intl", "--json").stdout)):
        loaded = stack_ready.kondge("tariffs", "load", str(example))
        assert loaded.returncode == 0, loaded.stderr

    def rate(at):
        r = stack_ready.kondge("rate", "--tariff", "intl", "--to", "+49 151 12345",
                               "--seconds", "600", "--at", at, "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)
    local = rate("2026-03-03T21:58")                  # Berlin: 2 min of peak, then off-peak
    assert (local["at"], local["cost"]) == ("2026-03-03T21:58:00+01:00", "0.7200")
    given = rate("2026-03-03T21:58:00+00:00")         # 22:58 in Berlin: off-peak only
    assert (given["at"], given["cost"]) == ("2026-03-03T22:58:00+01:00", "0.6000")
    r = stack_ready.kondge("rate", "--tariff", "intl", "--to", "4915112345", "--seconds", "60",
                           "--at", "2026-10-25T02:30")
    assert r.returncode == 1 and "happens twice in Europe/Berlin" in r.stderr
