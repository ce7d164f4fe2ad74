"""Gateways whose settings FreeRADIUS cannot be given, through the real
service: `kondge gateways add/modify` refuse them with a clear message; rows
written straight into the table (as an admin with psql could, bypassing
its CHECK constraints) are left out of FreeRADIUS's client list and named
by `kondge server status` and the supervisor's log, while every other
gateway is served, across a front-end restart and a fresh start, and the
report clears once the bad rows are gone."""

import json

import pytest

from kondge_billing import config
from kondge_billing.store import gateways
from kondge_billing.operations import stack
from tests.e2e.conftest import env_beside, wait_until_served
from tests.e2e.test_radius import access
from tests.support.radius import RadiusClient
from tests.support.waiting import wait_for

# (name, address, secret, language map, served?): rows psql could write.
# `${`, `#` and `}` are carried as given; the others break a rule.
ROWS = [
    ("dollar-brace", "127.0.3.40", "a${confdir}b$ENV{HOME}", {}, True),
    ("hash-brace", "127.0.3.41", "x#y}z'{", {}, True),
    ("backslash", "127.0.3.42", "ends\\", {}, False),
    ("newline", "127.0.3.43", "two\nlines", {}, False),
    ("double-quote", "127.0.3.44", 'say "hi"', {}, False),
    ("non-ascii", "127.0.3.45", "caf\u00e9", {}, False),
    ("very-long", "127.0.3.46", "L" * 9000, {}, False),
    ("empty", "127.0.3.47", "", {}, False),
    ("bad-map", "127.0.3.48", "fine", {"en": "a\nb"}, False),
    ("evil'}\nclient x {\n", "127.0.3.49", "fine", {}, False),
    ("n\u00e4me", "127.0.3.50", "fine", {}, False),
    ("N" * 300, "127.0.3.51", "fine", {}, False),
    ("", "127.0.3.52", "fine", {}, False),
]
BAD = [row for row in ROWS if not row[4]]


def status(service):
    result = service.kondge("--json", "server", "status")
    return result.returncode, json.loads(result.stdout)


def not_served(service) -> set:
    return {g["id"] for g in status(service)[1]["gateways_not_served"]}


@pytest.fixture
def hostile_rows(stack_ready):
    """ROWS written with the table's CHECK constraints dropped, as an admin
    with psql could; afterwards the rows are deleted and the constraints
    put back as they were."""
    db = stack_ready.db

    def write(cur):
        cur.execute("""SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
                        WHERE conrelid = 'kondge.gateway'::regclass AND contype = 'c'""")
        checks = cur.fetchall()
        for c in checks:
            cur.execute(f'ALTER TABLE kondge.gateway DROP CONSTRAINT "{c["conname"]}"')
        ids = []
        for name, address, secret, language_map, _served in ROWS:
            cur.execute("""INSERT INTO kondge.gateway (name, address, secret, dialect,
                                                       language_map)
                           VALUES (%s, %s, %s, 'cisco', %s) RETURNING id""",
                        (name, address, secret, json.dumps(language_map)))
            ids.append(cur.fetchone()["id"])
        return ids, checks
    ids, checks = db.transaction(write)
    yield dict(zip([row[0] for row in ROWS], ids))

    def clean(cur):
        cur.execute("DELETE FROM kondge.gateway WHERE id = ANY(%s)", (ids,))
        for c in checks:
            cur.execute(f'ALTER TABLE kondge.gateway ADD CONSTRAINT "{c["conname"]}" '
                        f'{c["def"]}')
    db.transaction(clean)


def test_add_and_modify_refuse_what_cannot_be_served_and_say_why(stack_ready):
    for name, secret, rule in (("ok-name", "ends\\", "secret"),
                               ("ok-name", "two\nlines", "secret"),
                               ("ok-name", 'say "hi"', "secret"),
                               ("ok-name", "caf\u00e9", "secret"),
                               ("ok-name", "L" * 129, "secret"),
                               ("ok-name", "", "secret"),
                               ("bad'name", "fine", "name"),
                               ("n\u00e4me", "fine", "name"),
                               ("x\n", "fine", "name")):
        result = stack_ready.kondge("gateways", "add", "--name", name, "--address",
                                    "127.0.3.60", "--secret", secret, "--dialect", "cisco")
        assert result.returncode == 1, (name, secret, result.stdout)
        assert f"{rule}: " in result.stderr
        if secret and rule == "secret":
            assert secret not in result.stderr
    listed = json.loads(stack_ready.kondge("--json", "gateways", "list").stdout)
    assert "127.0.3.60" not in {g["address"] for g in listed}
    for language_map in ("en=a b", "en=a\"b", "en=\u4e2d\u6587", "EN=en", "en=" + "x" * 17):
        result = stack_ready.kondge("gateways", "modify", "demo-gw", "--language-map",
                                    language_map)
        assert result.returncode == 1 and "language map: " in result.stderr, language_map
    result = stack_ready.kondge("gateways", "modify", "demo-gw", "--country-code", "4a")
    assert result.returncode == 1 and "country code: " in result.stderr


def test_bad_rows_are_left_out_and_every_other_gateway_is_served(stack_ready, hostile_rows):
    s = stack_ready.settings
    log = s.log_dir / "supervisor.log"
    bad_ids = {hostile_rows[row[0]] for row in BAD}
    # picked up without a command (KONDGE_GATEWAY_SYNC), and reported
    wait_for("the bad rows reported as not served", lambda: not_served(stack_ready) == bad_ids,
             30, detail=lambda: not_served(stack_ready))
    code, st = status(stack_ready)
    assert code == 3
    for item in st["gateways_not_served"]:
        assert "\n" not in item["gateway"] + item["problem"]
        assert not any(secret and secret in json.dumps(item)
                       for _n, _a, secret, _m, _s in ROWS if len(secret) > 3)
    text = stack_ready.kondge("server", "status").stdout
    assert text.count("PROBLEM: gateway ") == len(BAD)
    assert "remove --id" in text and "secret: 1 to 128" in text
    assert "is not served" in log.read_text()
    # the good gateways, old and hostile-looking, are served as given
    wait_until_served(stack_ready, "127.0.0.1", "testing123")
    wait_until_served(stack_ready, "127.0.3.40", "a${confdir}b$ENV{HOME}")
    wait_until_served(stack_ready, "127.0.3.41", "x#y}z'{")
    for _name, address, secret, _map, _served in BAD:
        wait_until_served(stack_ready, address, secret or "x", served=False, timeout=2)
    # gateway changes still apply: a new gateway is added to the running
    # server, and its removal restarts the front end, which starts again
    added = stack_ready.kondge("gateways", "add", "--name", "beside-bad", "--address",
                               "127.0.3.61", "--secret", "ok", "--dialect", "generic")
    assert added.returncode == 0 and "serves the change now" in added.stdout, added.stderr
    wait_until_served(stack_ready, "127.0.3.61", "ok")
    removed = stack_ready.kondge("gateways", "remove", "beside-bad")
    assert removed.returncode == 0 and "serves the change now" in removed.stdout
    wait_until_served(stack_ready, "127.0.3.61", "ok", served=False)
    wait_until_served(stack_ready, "127.0.0.1", "testing123")
    wait_until_served(stack_ready, "127.0.0.4", "ma-secret", message_authenticator=True)
    wait_until_served(stack_ready, "127.0.3.40", "a${confdir}b$ENV{HOME}")
    # removed by id (as status says), or deleted with psql: the report clears
    first, *rest = sorted(bad_ids)
    gone = stack_ready.kondge("gateways", "remove", "--id", str(first))
    assert gone.returncode == 0, gone.stderr
    assert not_served(stack_ready) == bad_ids - {first}
    stack_ready.db.run(lambda cur: cur.execute(
        "DELETE FROM kondge.gateway WHERE id = ANY(%s)", (rest,)))
    wait_for("every gateway served", lambda: not_served(stack_ready) == set(), 30,
             detail=lambda: not_served(stack_ready))
    code, st = status(stack_ready)
    assert code == 0 and st["gateways_not_served"] == []
    wait_until_served(stack_ready, "127.0.0.1", "testing123")


def test_a_fresh_start_with_bad_rows_serves_the_others(stack_ready, hostile_rows, service_var):
    """The client list a start renders from the table with bad rows: the
    front end and its workers start, and serve the good gateways."""
    s = config.load(env_beside(stack_ready, service_var, KONDGE_WORKERS="2"))
    rendered = stack.render_clients(s, stack_ready.db.run(gateways.all_gateways))
    assert {item.id for item in rendered.skipped} == {hostile_rows[row[0]] for row in BAD}
    served_addresses = {g["address"] for g in json.loads(
        s.gateway_directory.read_text())["gateways"]}
    assert "127.0.3.40" in served_addresses and "127.0.3.42" not in served_addresses
    radius = stack.RadiusSet(s)
    radius.start()
    try:
        for secret, source in (("testing123", "127.0.0.1"),
                               ("a${confdir}b$ENV{HOME}", "127.0.3.40"),
                               ("x#y}z'{", "127.0.3.41")):
            client = RadiusClient(s.auth_port, s.acct_port, secret, source=source)
            try:
                reply = access(client, "1000000008", "1234")
                assert reply is not None and reply.accepted, source
            finally:
                client.close()
        client = RadiusClient(s.auth_port, s.acct_port, "fine", source="127.0.3.48",
                              timeout=0.5)
        try:
            assert access(client, "1000000008", "1234") is None
        finally:
            client.close()
    finally:
        radius.stop()
