"""FreeRADIUS syntax written at run time (kondge_billing/operations/radius_config.py):
client sections, the clients.conf of each kind of process, workers.conf,
and strings FreeRADIUS reads back exactly as given, or a refusal; a gateway
that cannot be written is left out, with why, and the others are written."""

import stat

import pytest

from kondge_billing.operations import radius_config as rc
from kondge_billing.store.gateways import SECRET, Gateway


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
    rendered = rc.render_gateways([gw(id_=2, name="b", address="192.0.2.2"),
                                   gw(id_=1, name="a", address="192.0.2.1")])
    text = rendered.text
    assert text.startswith("# Rendered from the gateway table")
    assert text.index("client gw2 {") < text.index("client gw1 {")
    assert list(rendered.sections) == ["192.0.2.2", "192.0.2.1"] and rendered.skipped == ()
    assert rc.render_gateways([]).text.count("client") == 0


# Values a row written with psql could hold (the table's CHECKs bypassed):
# each would stop FreeRADIUS reading the whole client list, or be read as
# something else. (setting, value, what the reason names)
HOSTILE = [
    ("secret", "back\\slash", "secret"),
    ("secret", "new\nline", "secret"),
    ("secret", "caf\u00e9", "secret"),
    ("secret", "x" * 10000, "secret"),
    ("secret", "", "secret"),
    ("secret", "with space", "secret"),
    ("secret", 'double"quote', "secret"),
    ("name", "gw'}\nclient evil {", "name"),
    ("name", "", "name"),
    ("name", "n\u00e4me", "name"),
    ("name", "n" * 300, "name"),
    ("name", "#comment", "name"),
    ("name", "${confdir}", "name"),
    ("address", "10.0.0.1 } client x {", "address"),
    ("address", "0.0.0.0", "address"),
    ("dialect", "cisco'\n", "dialect"),
    ("message_authenticator", "maybe", "message authenticator"),
    ("billed_leg", "both", "billed leg"),
    ("prepaid_billing_model", 7, "prepaid billing model"),
    ("country_code", "4a", "country code"),
    ("language_map", {"en": "a b"}, "language map"),
    ("language_map", {"en": "\u4e2d\u6587"}, "language map"),
    ("language_map", {"en": "x\n"}, "language map"),
    ("language_map", {"EN": "en"}, "language map"),
    ("language_map", ["en"], "language map"),
    ("accounting_start", "later", "accounting start"),
]


@pytest.mark.parametrize("setting, value, named", HOSTILE)
def test_a_gateway_that_breaks_a_rule_is_left_out_and_the_others_are_written(
        setting, value, named):
    fields = {"id_": 2, "name": "bad", "address": "192.0.2.2"}
    bad = gw(**fields)
    bad = Gateway(**dict(bad.__dict__, **{setting: value}))
    rendered = rc.render_gateways([gw(id_=1, name="good-1", address="192.0.2.1"), bad,
                                   gw(id_=3, name="good-3", address="192.0.2.3")])
    assert list(rendered.sections) == ["192.0.2.1", "192.0.2.3"]
    assert "client gw2 " not in rendered.text
    assert "client gw1 {" in rendered.text and "client gw3 {" in rendered.text
    [skipped] = rendered.skipped
    assert skipped.id == 2 and named in skipped.problem
    # the reason is one printable line and never holds the secret
    line = skipped.line()
    assert line.isprintable() and len(line) < 1000
    if setting == "secret" and value:
        assert value not in line
    assert "s3cret" not in line


def test_a_skipped_gateway_with_a_hostile_name_is_named_by_its_id_escaped():
    rendered = rc.render_gateways([gw(name="gw\nb", id_=9)])
    [skipped] = rendered.skipped
    assert skipped.gateway == "#9 'gw\\nb'" and "\n" not in skipped.line()


def test_a_second_gateway_on_an_address_is_left_out():
    """Two clients on one address would stop FreeRADIUS reading the list."""
    rendered = rc.render_gateways([gw(id_=1, name="first"), gw(id_=2, name="second")])
    assert list(rendered.sections) == ["192.0.2.10"] and "client gw1 {" in rendered.text
    assert [(s.id, s.problem) for s in rendered.skipped] == [
        (2, "gateway first has this address")]


def test_a_worker_knows_the_front_end_only_and_requires_its_message_authenticator():
    assert rc.frontend_client("Ab-9_x") == (
        "client kondge-frontend {\n"
        "\tipaddr = 127.0.0.1\n"
        "\tsecret = 'Ab-9_x'\n"
        "\tshortname = 'kondge-frontend'\n"
        "\trequire_message_authenticator = yes\n"
        "\tproto = *\n"                # the front end comes over UDP and TCP
        "}\n")


def home_section(text: str, name: str) -> str:
    begin = text.index(f"home_server {name} {{")
    return text[begin:text.index("\n}\n", begin) + 3]


def test_workers_conf_two_home_servers_per_worker_their_pools_and_realms():
    """A worker's calls (stage 2 on port + 1, accounting on port + 2) without
    a limit; its new logins (port) at most logins_in_flight unanswered."""
    text = rc.workers_conf([("kondge-worker-1", 40000), ("kondge-worker-2", 40100)], "k3y",
                           logins_in_flight=12)
    assert text.count("home_server kondge-worker-") == 4
    calls = home_section(text, "kondge-worker-1")
    for line in ("\ttype = auth+acct\n", "\tipaddr = 127.0.0.1\n", "\tport = 40001\n",
                 "\tproto = tcp\n",
                 "\tsecret = 'k3y'\n", "\tstatus_check = status-server\n",
                 "\tmax_outstanding = 65536\n"):
        assert line in calls
    logins = home_section(text, "kondge-worker-2-logins")
    for line in ("\ttype = auth\n", "\tport = 40100\n", "\tsecret = 'k3y'\n", "\tproto = udp\n",
                 "\tstatus_check = status-server\n", "\tmax_outstanding = 12\n"):
        assert line in logins
    assert text.endswith(
        "home_server_pool kondge_workers {\n"
        "\ttype = load-balance\n"
        "\thome_server = kondge-worker-1\n"
        "\thome_server = kondge-worker-2\n"
        "}\n"
        "home_server_pool kondge_logins {\n"
        "\ttype = load-balance\n"
        "\thome_server = kondge-worker-1-logins\n"
        "\thome_server = kondge-worker-2-logins\n"
        "}\n"
        "realm kondge_workers {\n"
        "\tauth_pool = kondge_workers\n"
        "\tacct_pool = kondge_workers\n"
        "\tnostrip\n"
        "}\n"
        "realm kondge_logins {\n"
        "\tauth_pool = kondge_logins\n"
        "\tnostrip\n"
        "}\n")
    assert "\ttype = keyed-balance\n" in rc.workers_conf([("w", 40000)], "k3y", "keyed-balance")
    assert rc.worker_ports(40000) == {"logins": 40000, "calls": 40001, "acct": 40002}
    # the calls and accounting over TCP, to listeners that queue them with the logins
    listeners = rc.worker_listeners(40000)
    assert listeners.count("\ttype = auth+acct\n\tproto = tcp\n") == 2
    assert "\tport = 40001\n" in listeners and "\tport = 40002\n" in listeners


@pytest.mark.parametrize("homes, pool_type, in_flight", [
    ([("w 1", 40000)], "load-balance", 16),          # a name that is no bare word
    ([("w{", 40000)], "load-balance", 16),
    ([("w", 65534)], "load-balance", 16),            # acct would be on 65536
    ([("w", "40000")], "load-balance", 16),
    ([("w", 40000)], "round-robin", 16),             # no such pool type
    ([("w", 40000)], "load-balance", 7),             # FreeRADIUS's least is 8
    ([("w", 40000)], "load-balance", "16"),
])
def test_workers_conf_refuses_what_would_not_parse(homes, pool_type, in_flight):
    with pytest.raises(rc.RadiusConfigError):
        rc.workers_conf(homes, "k3y", pool_type, in_flight)


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
    "caf\u00e9", "\u2018quoted\u2019", "x" * (rc.MAX_LENGTH + 1),
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
    {"message_authenticator": "maybe"}, {"name": "gw\nb"}, {"id_": "7 {"},
])
def test_a_gateway_that_would_not_render_exactly_is_refused(change):
    with pytest.raises(rc.RadiusConfigError):
        rc.gateway_client(gw(**change))


def test_files_with_secrets_are_private_from_their_first_byte(tmp_path):
    path = tmp_path / "run" / "clients.conf"
    rc.write_private(path, "client x {}\n")
    rc.write_private(path, rc.frontend_client("k3y"))
    assert path.read_text().startswith("client kondge-frontend {")
    # its owner writes it, the group of its folder (FreeRADIUS's user's) reads it
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.stat().st_gid == path.parent.stat().st_gid
    assert [p.name for p in path.parent.iterdir()] == ["clients.conf"]


def test_the_gateways_sockets_receive_buffer_is_read_checked_and_passed_to_freeradius():
    from kondge_billing import config
    from kondge_billing.operations.radius_processes import radius_env
    assert config.load({}).recv_buffer == 4 << 20
    s = config.load({"KONDGE_RECV_BUFFER": "8388608"})
    assert s.recv_buffer == 8 << 20 and radius_env(s)["KONDGE_RECV_BUFFER"] == "8388608"
    for wrong in ("65535", str((1 << 28) + 1), "big"):
        with pytest.raises(SystemExit) as refused:
            config.load({"KONDGE_RECV_BUFFER": wrong})
        assert "KONDGE_RECV_BUFFER" in str(refused.value)


def test_start_says_when_the_kernel_gives_less_buffer_than_asked(tmp_path):
    assert rc.receive_buffer_note(4 << 20, 4 << 20) is None
    assert rc.receive_buffer_note(4 << 20, None) is None          # cannot tell
    note = rc.receive_buffer_note(4 << 20, 212992)
    assert "212992" in note and "sysctl -w net.core.rmem_max=4194304" in note
    limit = tmp_path / "rmem_max"
    limit.write_text("212992\n")
    assert rc.kernel_rmem_max(str(limit)) == 212992
    assert rc.kernel_rmem_max(str(tmp_path / "none")) is None


def test_a_workers_ports_are_free_over_udp_and_tcp_and_outside_the_ephemeral_range(tmp_path):
    import socket
    from kondge_billing.operations import radius_processes as rp
    low, high = rp.ephemeral_ports()
    for _ in range(20):
        port = rp.free_ports(3)
        assert all(not low <= p <= high and 1024 <= p <= 65535 for p in range(port, port + 3))
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)    # a TCP listener only
    held.bind(("127.0.0.1", 0))
    held.listen()
    try:
        assert not rp._free("127.0.0.1", held.getsockname()[1])
    finally:
        held.close()
    ranges = tmp_path / "range"
    ranges.write_text("1025\t65535\n")                  # as the kernel writes it
    assert rp.ephemeral_ports(str(ranges)) == (1025, 65535)
    assert rp.ephemeral_ports(str(tmp_path / "none")) == (32768, 60999)


def test_setup_raises_rmem_max_to_the_receive_buffer_the_service_asks_for():
    """scripts/setup.sh raises net.core.rmem_max to the service's default
    KONDGE_RECV_BUFFER (or a larger one set): the two must not drift apart."""
    import re
    from kondge_billing import config
    from tests.conftest import HOME
    text = (HOME / "scripts" / "setup.sh").read_text()
    assert int(re.search(r"^want_rmem=(\d+)", text, re.M).group(1)) == config.load({}).recv_buffer
    assert 'want_rmem=$KONDGE_RECV_BUFFER' in text
