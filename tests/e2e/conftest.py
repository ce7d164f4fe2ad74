from contextlib import contextmanager

import pytest

from kondge_billing.store import cards, gateways
from kondge_billing import config
from kondge_billing.operations import stack
from kondge_billing.store.pins import load_key
from tests.support.cards import new_card
from tests.support.waiting import wait_for


@pytest.fixture(scope="session")
def stack_ready(service):
    """The demo set plus a gateway of each dialect, added through the CLI."""
    for args in (
        ["gateways", "add", "--name", "quintum-1", "--address", "127.0.0.2",
         "--secret", "q-secret", "--dialect", "quintum"],
        ["gateways", "add", "--name", "lucent-1", "--address", "127.0.0.3",
         "--secret", "l-secret", "--dialect", "generic"],
        ["gateways", "add", "--name", "cisco-ma", "--address", "127.0.0.4",
         "--secret", "ma-secret", "--dialect", "cisco", "--message-authenticator", "required"],
        ["cards", "add", "--number", "2000000006", "--pin", "1111", "--balance", "5",
         "--currency", "USD", "--expires", "2020-01-01T00:00+00:00"],
        ["cards", "add", "--number", "2000000014", "--pin", "2222", "--balance", "0.10",
         "--currency", "USD"],
    ):
        result = service.kondge(*args)
        assert result.returncode == 0, result.stderr
    wait_until_served(service, "127.0.0.4", "ma-secret", message_authenticator=True)
    return service


@pytest.fixture
def cisco(stack_ready):
    client = stack_ready.client("testing123")
    yield client
    client.close()


def wait_until_served(service, source, secret, message_authenticator=False, served=True,
                      timeout=15.0):
    """Poll until the running server answers (or stops answering) a gateway."""
    def answered_as_wanted():
        client = service.client(secret, source=source, timeout=0.5)
        try:
            reply = client.access([("User-Name", "1000000008"), ("User-Password", "1234")],
                                  message_authenticator=message_authenticator)
        finally:
            client.close()
        return (reply is not None) == served
    wait_for(f"{source} {'served' if served else 'no longer served'}", answered_as_wanted,
             timeout)


def env_beside(service, var, **given):
    """The environment of a second FreeRADIUS set on the service's database
    (the run folder `var`, from the service_var fixture, and ports of its
    own), with `given` settings on top."""
    from tests.conftest import free_udp_port
    s = service.settings
    env = dict(service.env, KONDGE_VAR=str(var), KONDGE_WORKERS="2",
               KONDGE_AUTH_PORT=str(free_udp_port()), KONDGE_ACCT_PORT=str(free_udp_port()),
               KONDGE_DSN=s.dsn, KONDGE_RADIUS_DSN=s.radius_dsn, KONDGE_WEB_PORT="0")
    env.update(given)
    return env


@contextmanager
def radius_beside(service, var, **given):
    """A second FreeRADIUS set started on env_beside's environment, serving
    the service's gateways: its settings and the set; stopped on leaving."""
    s = config.load(env_beside(service, var, **given))
    stack.render_clients(s, service.db.run(gateways.all_gateways))
    radius = stack.RadiusSet(s)
    radius.start()
    try:
        yield s, radius
    finally:
        radius.stop()


@pytest.fixture
def card(stack_ready):
    """A fresh card with 10.00 USD, PIN 1234, for a test that spends money."""
    return new_card(stack_ready.db, load_key(stack_ready.settings.pin_key_file))


def balance(service, number):
    return service.db.run(lambda cur: cards.show(cur, number))["balance"]


@pytest.fixture
def service_var(request):
    """A KONDGE_VAR of its own for a second service in one test, under var/test
    rather than pytest's temporary folder: FreeRADIUS runs as its own user,
    who must reach it (pytest keeps its folder to root, mode 0700)."""
    import hashlib
    import shutil
    from tests.conftest import TEST_VAR
    # short: a control socket's path must fit in 108 bytes
    path = TEST_VAR / "x" / hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)
