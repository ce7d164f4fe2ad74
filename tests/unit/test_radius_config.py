"""FreeRADIUS syntax written at run time (kondge_billing/radius_config.py):
client sections, the clients.conf of each kind of process, workers.conf,
and strings FreeRADIUS reads back exactly as given, or a refusal."""

import stat

import pytest

from kondge_billing import radius_config as rc
from kondge_billing.gateways import SECRET, Gateway


def gw(dialect="cisco", message_authenticator="optional", secret="s3cret", id_=7,
       name="gw-a", address="192.0.2.10"):
    return Gateway(id_, name, address, secret, dialect, message_authenticator, "originate", 1)


@pytest.mark.parametrize("dialect", ["cisco", "quintum", "generic"])
@pytest.mark.parametrize("message_authenticator, required", [("required", "yes"),
                                                             ("optional", "no")])
def test_a_gateway_client_for_each_dialect_and_message_authenticator(
        dialect, message_authenticator, required):
    assert rc.gateway_client(gw(dialect, message_authenticator)) == (
        "client gw7 {\n"
        "\tipaddr = 192.0.2.10\n"
        "\tsecret = 's3cret'\n"
        "\tshortname = 'gw-a'\n"
        f"\tnas_type = '{dialect}'\n"
        f"\trequire_message_authenticator = {required}\n"
        "}\n")


def test_an_ipv6_gateway():
    assert "\tipaddr = 2001:db8::1\n" in rc.gateway_client(gw(address="2001:db8::1"))


def test_clients_conf_holds_every_gateway_in_order():
    text = rc.clients_conf([gw(id_=2, name="b", address="192.0.2.2"),
                            gw(id_=1, name="a", address="192.0.2.1")])
    assert text.startswith("# Rendered from the gateway table")
    assert text.index("client gw2 {") < text.index("client gw1 {")
    assert rc.clients_conf([]).count("client") == 0


def test_a_worker_knows_the_front_end_only_and_requires_its_message_authenticator():
    assert rc.frontend_client("Ab-9_x") == (
        "client kondge-frontend {\n"
        "\tipaddr = 127.0.0.1\n"
        "\tsecret = 'Ab-9_x'\n"
        "\tshortname = 'kondge-frontend'\n"
        "\trequire_message_authenticator = yes\n"
        "}\n")


def test_workers_conf_a_home_server_per_worker_their_pool_and_realm():
    text = rc.workers_conf([("kondge-worker-1", 40000), ("kondge-worker-2", 40100)], "k3y")
    assert text.count("home_server kondge-worker-") == 2
    first = text[text.index("home_server kondge-worker-1 {"):text.index("home_server kondge-worker-2 {")]
    for line in ("\ttype = auth+acct\n", "\tipaddr = 127.0.0.1\n", "\tport = 40000\n",
                 "\tsecret = 'k3y'\n", "\tstatus_check = status-server\n"):
        assert line in first
    assert text.endswith(
        "home_server_pool kondge_workers {\n"
        "\ttype = load-balance\n"
        "\thome_server = kondge-worker-1\n"
        "\thome_server = kondge-worker-2\n"
        "}\n"
        "realm kondge_workers {\n"
        "\tauth_pool = kondge_workers\n"
        "\tacct_pool = kondge_workers\n"
        "\tnostrip\n"
        "}\n")
    assert "\ttype = keyed-balance\n" in rc.workers_conf([("w", 40000)], "k3y", "keyed-balance")


@pytest.mark.parametrize("homes, pool_type", [
    ([("w 1", 40000)], "load-balance"),          # a name that is no bare word
    ([("w{", 40000)], "load-balance"),
    ([("w", 65535)], "load-balance"),            # acct would be on 65536
    ([("w", "40000")], "load-balance"),
    ([("w", 40000)], "round-robin"),             # no such pool type
])
def test_workers_conf_refuses_what_would_not_parse(homes, pool_type):
    with pytest.raises(rc.RadiusConfigError):
        rc.workers_conf(homes, "k3y", pool_type)


# FreeRADIUS expands ${...} and $ENV{...} in bare words and double-quoted
# strings: such a secret is written single-quoted, where nothing expands.
@pytest.mark.parametrize("value, written", [
    ("plain", "'plain'"),
    ("a${b}c", "'a${b}c'"),
    ("x$ENV{HOME}y", "'x$ENV{HOME}y'"),
    ("$", "'$'"),
    ("${", "'${'"),
    ("%{User-Name}", "'%{User-Name}'"),
    ("it's", "'it\\'s'"),
    ("'", "'\\''"),
    ('say "hi" # not a comment', "'say \"hi\" # not a comment'"),
    ("a,b}{=", "'a,b}{='"),
    ("", "''"),
])
def test_strings_are_written_so_that_freeradius_reads_them_as_given(value, written):
    assert rc.string(value) == written


@pytest.mark.parametrize("value", [
    "back\\slash", "ends in \\", "\\'", "new\nline", "tab\there", "nul\x00", "del\x7f",
    "caf\u00e9", "\u2018quoted\u2019",
])
def test_strings_freeradius_cannot_carry_as_given_are_refused(value):
    with pytest.raises(rc.RadiusConfigError):
        rc.string(value)


def test_every_secret_the_gateway_table_accepts_is_written():
    """gateways.SECRET (and the table's CHECK) allow printable ASCII but space,
    double quote and backslash: each such character renders."""
    allowed = "".join(chr(c) for c in range(0x21, 0x7f) if SECRET.match(chr(c)))
    assert "$" in allowed and "'" in allowed and "{" in allowed
    assert "\\" not in allowed and '"' not in allowed
    for i in range(0, len(allowed), 64):
        secret = allowed[i:i + 64]
        assert f"\tsecret = {rc.string(secret)}\n" in rc.gateway_client(gw(secret=secret))


def test_a_refusal_names_the_gateway_but_never_the_secret():
    with pytest.raises(rc.RadiusConfigError) as refused:
        rc.gateway_client(gw(secret="hunter2\\", name="gw-b"))
    assert "gw-b" in str(refused.value) and "secret" in str(refused.value)
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize("change", [
    {"secret": ""}, {"address": "gw.example.com"}, {"address": "10.0.0.1 } client x {"},
    {"message_authenticator": "maybe"}, {"name": "gw\nb"},
])
def test_a_gateway_that_would_not_render_exactly_is_refused(change):
    with pytest.raises(rc.RadiusConfigError):
        rc.gateway_client(gw(**change))


def test_files_with_secrets_are_private_from_their_first_byte(tmp_path):
    path = tmp_path / "run" / "clients.conf"
    rc.write_private(path, "client x {}\n")
    rc.write_private(path, rc.frontend_client("k3y"))
    assert path.read_text().startswith("client kondge-frontend {")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["clients.conf"]
