"""The FreeRADIUS front end and its worker processes (KONDGE_WORKERS >= 2,
the default), and the single-process layout (KONDGE_WORKERS=1).

The whole e2e suite already goes through the front end; these tests check
what is particular to it: the workers share the load, a gateway cannot
pass itself off as another, a dead worker is replaced while calls go on,
and one process alone still serves the gateways.
"""

import hmac
import json
import os
import select
import signal
import socket
import struct
import time
import types

from kondge_billing.operations import radius_config, stack
from tests.e2e.conftest import radius_beside
from tests.e2e.test_radius import access
from tests.support.radius import RadiusClient
from tests.support.waiting import poll, wait_for


def status(service) -> dict:
    result = service.kondge("server", "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_status_names_the_front_end_and_every_worker(stack_ready):
    st = status(stack_ready)
    workers = st["workers"]
    assert stack_ready.settings.workers >= 2
    assert sorted(workers) == [f"worker-{i}" for i in range(1, stack_ready.settings.workers + 1)]
    pids = [st["freeradius_pid"]] + list(workers.values())
    assert all(pids) and len(set(pids)) == len(pids)
    for pid in pids:
        assert b"freeradius" in open(f"/proc/{pid}/cmdline", "rb").read()


def wait_until_all_workers_in_use(settings, timeout=90.0):
    """Until the front end holds no worker zombie or dead (a test before
    this one may have killed one, or made one slow: a TCP port of it then
    turns zombie, dead after zombie_period, and is declared alive again by
    the supervisor REVIVE_TCP_AFTER later)."""
    def all_in_use():
        view = stack.front_end_view(settings)
        return len(view) == len(radius_config.WORKER_PROTOS) * settings.workers and not {"zombie", "dead"} & set(view.values())
    wait_for("every worker in use by the front end", all_in_use, timeout, step=0.5,
             detail=lambda: stack.front_end_view(settings))


def test_requests_are_shared_among_the_workers(stack_ready, cisco):
    """Each worker logs the refusals it makes: 30 logins of a card with
    nothing left (code 4; wrong PINs would lock it) reach them all."""
    s = stack_ready.settings
    wait_until_all_workers_in_use(s)
    logs = {i: s.log_dir / f"radius-worker-{i}.log" for i in range(1, s.workers + 1)}
    offsets = {i: path.stat().st_size for i, path in logs.items()}
    for _ in range(30):
        reply = access(cisco, "1000000024", "3456")
        assert reply is not None and reply.h323("h323-return-code") == "4"
    for i, path in logs.items():
        with open(path, "rb") as f:
            f.seek(offsets[i])
            assert b"reject code 4" in f.read(), f"worker {i} took none of 30 requests"


def hook_connections(service) -> int:
    return service.db.run(lambda cur: (cur.execute(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'kondge-radius'"),
        cur.fetchone())[1])["n"]


def test_each_worker_holds_one_database_connection(stack_ready, cisco):
    """rlm_python3 runs one hook at a time in a process: a worker's threads
    share one connection (store/db.py, one_connection), not one each."""
    s = stack_ready.settings
    wait_until_all_workers_in_use(s)
    for _ in range(40):             # spread over the workers' threads
        reply = access(cisco, "1000000024", "3456")
        assert reply is not None and reply.h323("h323-return-code") == "4"
    # a worker replaced by an earlier test may take a moment to close its own
    wait_for(f"at most {s.workers} hook connections",
             lambda: hook_connections(stack_ready) <= s.workers,
             timeout=15, detail=lambda: hook_connections(stack_ready))
    assert hook_connections(stack_ready) >= 1


def test_a_gateway_cannot_pass_itself_off_as_another(stack_ready, cisco):
    """The demo gateway (Cisco) names the generic gateway 127.0.0.3 in the
    attribute the front end uses to name the sender: it is still answered
    as itself, in the Cisco dialect."""
    reply = cisco.access([("User-Name", "1000000008"), ("User-Password", "1234"),
                          ("Called-Station-Id", "18005550100"),
                          ("Kondge-Gateway-Address", "127.0.0.3"),
                          ("Kondge-Gateway-Name", "lucent-1")])
    assert reply.accepted
    assert reply.h323("h323-credit-amount") == "10.00"
    assert "Reply-Message" not in reply.pairs      # what the generic dialect would get


def test_a_killed_worker_is_replaced_while_calls_go_on(stack_ready):
    s = stack_ready.settings
    before = status(stack_ready)["workers"]
    os.kill(before["worker-2"], signal.SIGKILL)
    client = stack_ready.client(timeout=2.0)
    try:
        # requests already sent to the dead worker are answered by its
        # successor (same port) when the gateway retransmits
        replies = [access(client, "1000000008", "1234", tries=4) for _ in range(20)]
    finally:
        client.close()
    assert all(r is not None and r.accepted for r in replies)
    poll(lambda: status(stack_ready)["workers"].get("worker-2") not in (None, before["worker-2"]),
         20)
    after = status(stack_ready)["workers"]
    assert after["worker-2"] not in (None, before["worker-2"])
    assert after["worker-1"] == before["worker-1"]          # the others were left alone
    assert s.workers == len(after)
    # the supervisor told the front end its successor serves: not avoided
    wait_until_all_workers_in_use(s, timeout=10.0)


def test_a_workers_tcp_port_held_dead_is_declared_alive_again(stack_ready, service_var):
    """FreeRADIUS 3.2 revives a dead UDP home server by Status-Server but
    may leave a TCP one dead for good (once its connection is gone): a
    worker that answers would get no more stage 2s or accounting. The
    supervisor's loop calls RadiusSet.revive_tcp, which declares such a
    port alive again through radmin once it has been dead REVIVE_TCP_AFTER
    while the worker's UDP port is alive: here against a real front end of
    a set of its own, the wait passed on a clock of the test's."""
    with radius_beside(stack_ready, service_var, KONDGE_WORKERS="2") as (s, radius):
        ports = radius_config.worker_ports(radius.workers[0].port)
        # a fresh front end knows nothing of its workers until traffic flows
        # ("unknown"); in service the logins keep the UDP port "alive"
        stack.radmin(s, f"set home_server state 127.0.0.1 {ports['logins']} udp alive")
        assert stack.front_end_view(s)[ports["logins"]] == "alive"
        stack.radmin(s, f"set home_server state 127.0.0.1 {ports['acct']} tcp dead")
        assert stack.front_end_view(s)[ports["acct"]] == "dead"
        clock = types.SimpleNamespace(now=1000.0)
        assert radius.revive_tcp(lambda: clock.now) == []           # dead: noted
        clock.now += radius.REVIVE_CHECK_EVERY
        assert radius.revive_tcp(lambda: clock.now) == []           # not long enough
        clock.now += radius.REVIVE_TCP_AFTER
        view = stack.front_end_view(s)
        revived = radius.revive_tcp(lambda: clock.now)
        if view[ports["acct"]] == "dead":                            # FreeRADIUS left it so
            assert revived == [ports["acct"]]
        assert stack.front_end_view(s)[ports["acct"]] == "alive"
        # a worker whose UDP port is dead too is left alone
        stack.radmin(s, f"set home_server state 127.0.0.1 {ports['logins']} udp dead")
        stack.radmin(s, f"set home_server state 127.0.0.1 {ports['calls']} tcp dead")
        for _ in range(2):
            clock.now += radius.REVIVE_TCP_AFTER
            assert radius.revive_tcp(lambda: clock.now) == []


def test_one_process_serves_the_gateways_itself(stack_ready, service_var):
    """KONDGE_WORKERS=1: no front end; the hook's process listens for the
    gateways (here on ports of its own, beside the suite's service)."""
    with radius_beside(stack_ready, service_var, KONDGE_WORKERS="1") as (s, radius):
        assert s.workers == 1
        assert radius.workers == [] and list(stack.radius_pids(s)) == ["freeradius"]
        client = RadiusClient(s.auth_port, s.acct_port, "testing123")
        try:
            login = access(client, "1000000008", "1234")
            assert login.accepted and login.h323("h323-credit-amount") == "10.00"
            # the sender is named from the packet's source here too
            spoofed = client.access([("User-Name", "1000000008"), ("User-Password", "1234"),
                                     ("Called-Station-Id", "18005550100"),
                                     ("Kondge-Gateway-Address", "127.0.0.3")])
            assert spoofed.accepted and "Reply-Message" not in spoofed.pairs
            answered = client.accounting([("Acct-Status-Type", "Accounting-On"),
                                          ("Acct-Session-Id", "0")])
            assert answered is not None
        finally:
            client.close()
    assert stack.radius_pids(s) == {}


def test_every_worker_serves_a_gateway_as_it_is_once_the_command_returns(stack_ready):
    """No polling: when `kondge gateways add/modify/remove` returns, every
    worker serves the gateway in its new state (here its numbering rules)."""
    from kondge_billing.store import callers
    from kondge_billing.store.pins import load_key
    from tests.e2e.test_callers import ani
    from tests.support.cards import new_card
    s = stack_ready.settings
    wait_until_all_workers_in_use(s)
    number = new_card(stack_ready.db, load_key(s.pin_key_file), "10.00")
    stack_ready.db.run(lambda cur: callers.bind(cur, number, ["447700900611"]))
    added = stack_ready.kondge("gateways", "add", "--name", "sync-1", "--address",
                               "127.0.0.31", "--secret", "sync", "--dialect", "quintum")
    assert added.returncode == 0, added.stderr
    assert "serves the change now" in added.stdout
    client = stack_ready.client("sync", source="127.0.0.31")
    try:
        # as added, it sends international numbers: 447700900611 is the caller
        replies = [ani(client, "447700900611") for _ in range(24)]
        assert all(r is not None and r.accepted for r in replies)
        # a national number means nothing yet: the caller is bound to no card
        national = ani(client, "07700900611")
        assert national is not None and not national.accepted
        changed = stack_ready.kondge("gateways", "modify", "sync-1", "--country-code", "44",
                                     "--national-prefix", "0")
        assert changed.returncode == 0, changed.stderr
        replies = [ani(client, "07700900611") for _ in range(24)]
        assert all(r is not None and r.accepted for r in replies), \
            [r and r.pairs for r in replies if r is None or not r.accepted]
        removed = stack_ready.kondge("gateways", "remove", "sync-1")
        assert removed.returncode == 0, removed.stderr
        client.sock.settimeout(0.3)
        assert all(ani(client, "07700900611") is None for _ in range(8))
    finally:
        client.close()


def outstanding(s, kind: str) -> int:
    """Requests the front end has sent to the workers' `kind` ports
    (radius_config.worker_ports) and not had answered."""
    total = 0
    for i in range(1, s.workers + 1):
        first = int((s.radius_run_dir / f"worker-{i}" / "port").read_text())
        port = radius_config.worker_ports(first)[kind]
        proto = radius_config.WORKER_PROTOS[kind]
        for line in stack.radmin(s, f"stats home_server 127.0.0.1 {port} {proto}").splitlines():
            if line.startswith("outstanding"):
                total += int(line.split()[1])
    return total


def logins_outstanding(s) -> int:
    return outstanding(s, "logins")


def calls_outstanding(s) -> int:
    return outstanding(s, "calls")


def test_new_logins_beyond_the_workers_limit_are_not_answered_and_admitted_calls_go_on(
        stack_ready):
    """While every worker has KONDGE_LOGINS_IN_FLIGHT new logins unanswered
    (here: all of them stopped for a moment), one more login is dropped by
    the front end and never reaches a worker; the stage 2 and the
    accounting of a call admitted before still go to the workers, and are
    answered as soon as they serve again, as are the logins they held."""
    from concurrent.futures import ThreadPoolExecutor
    from kondge_billing.store.pins import load_key
    from tests.e2e.test_radius import conf_id
    from tests.support.cards import new_card
    s = stack_ready.settings
    wait_until_all_workers_in_use(s)
    number = new_card(stack_ready.db, load_key(s.pin_key_file), "10.00")
    conf = conf_id()
    gateway = stack_ready.client("testing123", timeout=6.0)
    assert access(gateway, number, "1234", conf=conf).accepted          # admitted
    held = s.logins_in_flight * s.workers
    workers = list(status(stack_ready)["workers"].values())

    def login(timeout):
        client = stack_ready.client("testing123", timeout=timeout)
        try:
            return access(client, "1000000024", "3456")                # code 4: no balance
        finally:
            client.close()

    with ThreadPoolExecutor(held + 3) as pool:
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        try:
            logins = [pool.submit(login, 6.0) for _ in range(held)]
            wait_for(f"{held} logins outstanding at the workers",
                     lambda: logins_outstanding(s) == held, 5, step=0.05,
                     detail=lambda: logins_outstanding(s))
            extra = pool.submit(login, 4.0)
            stage2 = pool.submit(access, gateway, number, "1234", "447700900123", conf)
            wait_for("the stage 2 sent on to a worker", lambda: calls_outstanding(s) == 1,
                     5, step=0.05, detail=lambda: calls_outstanding(s))
            assert logins_outstanding(s) == held
        finally:
            for pid in workers:
                os.kill(pid, signal.SIGCONT)
        answers = [f.result() for f in logins]
        assert all(a is not None and a.h323("h323-return-code") == "4" for a in answers), \
            sum(a is None for a in answers)
        assert extra.result() is None                   # turned away by the front end
        call = stage2.result()
    assert call is not None and call.accepted and int(call.h323("h323-credit-time")) > 0
    started = gateway.accounting([
        ("Acct-Status-Type", "Start"), ("Acct-Session-Id", "CAPPED01"), ("User-Name", number),
        ("Calling-Station-Id", "15551234567"), ("Called-Station-Id", "447700900123"),
        ("h323-conf-id", conf), ("h323-call-origin", "h323-call-origin=originate")])
    assert started is not None
    gateway.close()
    # nothing stays held: a new login is served at once
    assert login(3.0).h323("h323-return-code") == "4"


def status_server(packet_id: int, secret: bytes) -> bytes:
    """A Status-Server (RFC 5997) with its Message-Authenticator."""
    head = bytes((12, packet_id)) + struct.pack("!H", 38) + os.urandom(16)
    mac = hmac.new(secret, head + bytes((80, 18)) + bytes(16), "md5").digest()
    return head + bytes((80, 18)) + mac


def test_a_burst_that_comes_while_the_front_end_is_busy_waits_and_is_answered(stack_ready):
    """The gateways' packets wait in the front end's socket while it cannot
    read them (a burst, a moment without the CPU): KONDGE_RECV_BUFFER bytes
    of them. 2,000 Status-Servers sent while it is stopped, several times
    what the kernel's default buffer holds (about 300 such datagrams:
    net.core.rmem_default), are all answered once it runs again. Before the
    buffer was set, the kernel dropped all but the first few hundred,
    silently: a stage 2 or a Stop among them would have been lost too."""
    s = stack_ready.settings
    assert radius_config.kernel_rmem_max() >= 1 << 20, \
        "net.core.rmem_max is below 1 MiB: make setup raises it (as root)"
    front = stack.radius_pids(s)["freeradius"]
    senders, each = 8, 250
    socks = []
    for _ in range(senders):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind(("127.0.0.1", 0))
        socks.append(sock)
    try:
        os.kill(front, signal.SIGSTOP)
        try:
            for sock in socks:
                for packet_id in range(each):
                    sock.sendto(status_server(packet_id, b"testing123"),
                                ("127.0.0.1", s.auth_port))
        finally:
            os.kill(front, signal.SIGCONT)
        answered = {sock: set() for sock in socks}
        deadline = time.monotonic() + 30
        while sum(map(len, answered.values())) < senders * each \
                and time.monotonic() < deadline:
            for sock in select.select(socks, [], [], 0.5)[0]:
                data = sock.recv(4096)
                if data[0] == 2:                    # Access-Accept: the server is up
                    answered[sock].add(data[1])
        assert [len(ids) for ids in answered.values()] == [each] * senders
    finally:
        for sock in socks:
            sock.close()
