"""Overload control (kondge_billing/edge/overload.py) through the real hook, with a
stand-in radiusd, a clock the test moves and a chosen random draw: no
database is touched by a request turned away, which gets what
KONDGE_AUTH_WHEN_DB_DOWN says (no answer, or code 8)."""

import pytest

from kondge_billing import config
from kondge_billing.edge import hook_runtime
from kondge_billing.edge import overload as ov
from kondge_billing.store.gateways import Gateway, GatewayDirectory
from kondge_billing.calls.service import Billing
from tests.support.hook import load_hook
from tests.unit.test_hook import CISCO, NoDatabase

T0 = 1_800_000_000.0
LOGIN = (("User-Name", "1000000008"), ("User-Password", "1234"),
         ("Called-Station-Id", "18005550100"), ("Kondge-Gateway-Address", "127.0.0.1"))
STOP = (("Acct-Status-Type", "Stop"), ("Acct-Session-Id", "1"),
        ("h323-conf-id", "h323-conf-id=1 2 3 4"), ("Kondge-Gateway-Address", "127.0.0.1"))
QUIET = lambda *_a: None  # noqa: E731


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


class Draw:
    """The random draw a request is admitted by (admitted if below the share)."""

    def __init__(self, value=0.99):
        self.value = value

    def __call__(self):
        return self.value


def stamped(pairs, received: float):
    return tuple(pairs) + (("Kondge-Received-Seconds", str(int(received))),
                           ("Kondge-Received-Microseconds",
                            str(round((received - int(received)) * 1e6))))


class Recording:
    """Counts what reaches the database; answers nothing (the records fail)."""

    def __init__(self):
        self.calls = 0

    def run(self, work):
        self.calls += 1
        raise RuntimeError("no database in this test")


def hook_with(limit_ms, db, when_down="reject", gateways=(CISCO,)):
    """The hook with an Overload of `limit_ms` (as KONDGE_SHED_AFTER_MS)."""
    billing = Billing(db, b"k" * 32, GatewayDirectory(lambda: list(gateways)),
                      auth_when_db_down=when_down)
    hook, radiusd, logged = load_hook(billing)
    clock, draw = Clock(), Draw()
    hook_runtime._overload = ov.Overload(limit_ms * 1000, clock=clock, draw=draw)
    return hook, radiusd, logged, clock, draw


def teardown_function(_f):
    hook_runtime._overload = None


def late(clock, seconds=0.4):
    return stamped(STOP, clock.now - seconds)


def overloaded(clock, log=QUIET):
    """Accounting late for PERSIST seconds on end: the first cut."""
    o = hook_runtime._overload
    o.accounting(late(clock), log)
    assert not o.shedding                  # one late record is a stall, not overload
    clock.now += ov.PERSIST
    o.accounting(late(clock), log)


def test_queue_wait_reads_the_stamp_and_ignores_a_missing_or_odd_one():
    assert ov.queue_wait(stamped(LOGIN, T0 - 0.25), T0) == 0.25
    assert ov.queue_wait(LOGIN, T0) is None
    assert ov.queue_wait(LOGIN + (("Kondge-Received-Seconds", "x"),), T0) is None
    assert ov.queue_wait(stamped(LOGIN, T0 + 5), T0) == 0.0       # never negative


def test_a_late_accounting_record_turns_new_calls_away_without_the_database():
    db = Recording()
    hook, radiusd, logged, clock, draw = hook_with(250, db)
    hook.accounting(late(clock))       # still processed (here it fails on the database)
    assert db.calls >= 1
    assert not hook_runtime._overload.shedding and not any(
        m.startswith("kondge: overload") for _, m in logged)
    clock.now += ov.PERSIST
    hook.accounting(late(clock))       # accounting still late half a second later
    assert [m for _, m in logged if m.startswith("kondge: overload")] == [
        "kondge: overload: an accounting record waited 400 ms in the queue "
        "(KONDGE_SHED_AFTER_MS=250); admitting fewer new calls until accounting is "
        "served in time again"]
    assert hook_runtime._overload.admit == ov.CUT
    before = db.calls
    for _ in range(3):                 # drawn above the share: turned away
        code, reply, control = hook.authorize(stamped(LOGIN, clock.now - 0.001))
        assert code == radiusd.RLM_MODULE_REJECT and control == ()
        assert reply == (("h323-return-code", "h323-return-code=8"),
                         ("Reply-Message", "service busy, try again later"))
    assert db.calls == before
    draw.value = 0.1                   # drawn within the share: served
    code, _, _ = hook.authorize(stamped(LOGIN, clock.now - 0.001))
    assert code == radiusd.RLM_MODULE_FAIL and db.calls == before + 1


def test_by_default_they_get_no_answer_as_when_the_database_is_down():
    hook, radiusd, logged, clock, _draw = hook_with(250, NoDatabase(), when_down="silent")
    overloaded(clock)
    assert hook.authorize(stamped(LOGIN, clock.now)) == (radiusd.RLM_MODULE_FAIL, (),
                                                         (("Kondge-No-Answer", "1"),))
    assert not any("Traceback" in m for _, m in logged)


def test_the_share_is_cut_at_most_every_so_often_and_never_below_the_floor():
    _hook, _radiusd, _logged, clock, _draw = hook_with(250, NoDatabase())
    o = hook_runtime._overload
    overloaded(clock)
    o.accounting(late(clock), QUIET)              # same moment: one cut
    assert o.admit == ov.CUT
    for _ in range(100):
        clock.now += ov.CUT_EVERY
        o.accounting(late(clock), QUIET)
    assert o.admit == ov.FLOOR


def test_records_served_in_time_win_the_share_back_and_end_the_episode():
    hook, radiusd, logged, clock, _draw = hook_with(250, NoDatabase())
    o = hook_runtime._overload
    overloaded(clock)
    assert o.shedding
    hook.authorize(stamped(LOGIN, clock.now))                     # one turned away
    o.accounting(stamped(STOP, clock.now - 0.2), QUIET)           # 200 ms: neither
    assert o.admit == ov.CUT
    # won back by time, not by the number of records: as many records in
    # one moment win nothing
    for _ in range(50):
        o.accounting(stamped(STOP, clock.now - 0.05), QUIET)
    assert o.admit == ov.CUT
    steps = 0
    while o.shedding:
        clock.now += 0.1
        o.accounting(stamped(STOP, clock.now - 0.05), hook_runtime_log(logged))
        steps += 1
    assert abs(steps - (1 - ov.CUT) / ov.RISE / 0.1) <= 1      # floats: one step either way
    assert logged[-1][1] == ("kondge: overload over: all new calls admitted again; "
                             "1 authorization(s) turned away meanwhile")


def hook_runtime_log(logged):
    return lambda level, message: logged.append((level, "kondge: " + message))


def test_all_are_admitted_again_when_no_record_was_late_for_a_while():
    hook, radiusd, logged, clock, _draw = hook_with(250, NoDatabase())
    overloaded(clock)
    clock.now += ov.RECOVER_AFTER
    # served again: the card look-up is reached (and refused by NoDatabase)
    code, _, _ = hook.authorize(stamped(LOGIN, clock.now - 0.001))
    assert code == radiusd.RLM_MODULE_FAIL
    assert not hook_runtime._overload.shedding
    assert any("Traceback" in m and "must not be touched" in m for _, m in logged)


def test_an_authorization_that_itself_waited_too_long_is_turned_away_while_shedding():
    hook, radiusd, logged, clock, draw = hook_with(250, NoDatabase())
    # not overloaded: served (the card look-up is reached, and refused by NoDatabase)
    code, _, _ = hook.authorize(stamped(LOGIN, clock.now - 0.3))
    assert code == radiusd.RLM_MODULE_FAIL
    overloaded(clock)
    draw.value = 0.0                              # within the share, but too late
    code, reply, _ = hook.authorize(stamped(LOGIN, clock.now - 0.3))
    assert code == radiusd.RLM_MODULE_REJECT
    assert ("h323-return-code", "h323-return-code=8") in reply


def test_a_stall_that_passes_turns_nobody_away():
    """A flush or a restart holds the queue a moment: the records it delayed
    are served within a fraction of PERSIST, and then one is in time."""
    hook, radiusd, _logged, clock, _draw = hook_with(250, NoDatabase())
    o = hook_runtime._overload
    for i in range(40):                           # 40 records delayed by a 0.6 s stall
        o.accounting(stamped(STOP, clock.now - 0.6 + i * 0.01), QUIET)
        clock.now += 0.002
    o.accounting(stamped(STOP, clock.now - 0.01), QUIET)
    clock.now += 1.0
    o.accounting(late(clock), QUIET)              # another stall a second later
    assert not o.shedding and o.admit == 1.0


def test_unstamped_records_and_a_zero_limit_never_shed():
    _hook, _radiusd, _logged, clock, _draw = hook_with(0, NoDatabase())
    hook_runtime._overload.accounting(late(clock, 60), QUIET)
    assert not hook_runtime._overload.shedding
    _hook, _radiusd, _logged, clock, _draw = hook_with(250, NoDatabase())
    hook_runtime._overload.accounting(STOP, QUIET)           # read back from the spool
    assert not hook_runtime._overload.shedding


def test_an_unknown_gateway_still_gets_no_answer_while_shedding():
    hook, radiusd, _logged, clock, _draw = hook_with(250, NoDatabase())
    overloaded(clock)
    odd = tuple(p for p in LOGIN if p[0] != "Kondge-Gateway-Address") + (
        ("Kondge-Gateway-Address", "10.9.9.9"),)
    code, reply, _ = hook.authorize(stamped(odd, clock.now))
    assert code == radiusd.RLM_MODULE_FAIL and reply == ()


def test_the_refusal_speaks_the_gateways_dialect():
    """A generic gateway gets Reply-Message only."""
    generic = Gateway(2, "lucent", "127.0.0.3", "s", "generic", "optional", "session", 1)
    hook, radiusd, _logged, clock, _draw = hook_with(250, NoDatabase(),
                                                     gateways=(CISCO, generic))
    overloaded(clock)
    pairs = tuple(p for p in LOGIN if p[0] != "Kondge-Gateway-Address") + (
        ("Kondge-Gateway-Address", "127.0.0.3"),)
    code, reply, _ = hook.authorize(stamped(pairs, clock.now))
    assert code == radiusd.RLM_MODULE_REJECT
    assert reply == (("Reply-Message", "service busy, try again later"),)


def test_the_setting_is_read_and_checked():
    assert config.load({}).shed_after_us == 250_000
    assert config.load({"KONDGE_SHED_AFTER_MS": "0"}).shed_after_us == 0
    assert config.load({"KONDGE_SHED_AFTER_MS": "0.5"}).shed_after_us == 500
    assert_refused("KONDGE_SHED_AFTER_MS", ("-1", "soon", "70000"))


def test_a_failing_overload_control_never_costs_an_accounting_record():
    db = Recording()
    hook, radiusd, logged, clock, _draw = hook_with(250, db)

    def broken():
        raise RuntimeError("clock gone")
    hook_runtime._overload.clock = broken
    hook.accounting(late(clock))
    assert db.calls >= 1                      # the record still went to the database
    assert any("overload control failed" in m and "clock gone" in m for _, m in logged)


DESTINATION = (("User-Name", "1000000008"), ("User-Password", "1234"),
               ("Called-Station-Id", "447911123456"), ("Kondge-Gateway-Address", "127.0.0.1"))


def shedding_all(clock, draw):
    """Overloaded, with a draw that turns every stage 1 away."""
    overloaded(clock)
    draw.value = 0.99
    assert hook_runtime._overload.shedding


def test_a_stage_2_is_served_while_stage_1_is_turned_away():
    db = Recording()
    hook, radiusd, _logged, clock, draw = hook_with(250, db)
    hook_runtime._billing.access_numbers.add("18005550100")   # a login seen before
    shedding_all(clock, draw)
    before = db.calls
    code, reply, _ = hook.authorize(stamped(LOGIN, clock.now - 0.001))
    assert code == radiusd.RLM_MODULE_REJECT and db.calls == before     # stage 1: away
    assert ("h323-return-code", "h323-return-code=8") in reply
    # a stage 2, even one that waited past the limit, reaches the call path
    code, _, _ = hook.authorize(stamped(DESTINATION, clock.now - 0.4))
    assert code == radiusd.RLM_MODULE_FAIL and db.calls == before + 1
    assert hook_runtime._overload.refused == 1


def test_the_stage_the_gateway_names_decides_before_the_number():
    db = Recording()
    hook, radiusd, _logged, clock, draw = hook_with(250, db)
    hook_runtime._billing.access_numbers.add("18005550100")
    shedding_all(clock, draw)
    before = db.calls
    named_login = DESTINATION + (("Service-Type", "Authenticate-Only"),)
    code, _, _ = hook.authorize(stamped(named_login, clock.now))
    assert code == radiusd.RLM_MODULE_REJECT and db.calls == before
    named_destination = LOGIN + (("Service-Type", "Outbound-User"),)
    code, _, _ = hook.authorize(stamped(named_destination, clock.now))
    assert code == radiusd.RLM_MODULE_FAIL and db.calls == before + 1


def test_a_process_that_served_no_login_cannot_tell_and_sheds_as_before():
    db = Recording()
    hook, radiusd, _logged, clock, draw = hook_with(250, db)
    assert hook_runtime._billing.access_numbers == set()
    shedding_all(clock, draw)
    code, _, _ = hook.authorize(stamped(DESTINATION, clock.now))
    assert code == radiusd.RLM_MODULE_REJECT and db.calls == 0



def test_late_records_while_the_database_warms_up_turn_nobody_away():
    """For a few seconds after the database came back, its new connections'
    first statements are slow while the outage's retransmissions arrive: no
    late spell begins, and none is carried over into the time after."""
    _hook, _radiusd, _logged, clock, _draw = hook_with(250, NoDatabase())
    warming = [True]
    o = hook_runtime._overload
    o.settling = lambda: warming[0]
    for _ in range(20):                        # late for 2 s on end
        o.accounting(late(clock), QUIET)
        clock.now += 0.1
    assert not o.shedding and o.late_since is None
    warming[0] = False                         # warmed up: lateness counts again
    o.accounting(late(clock), QUIET)
    assert not o.shedding                      # one late record is a stall
    clock.now += ov.PERSIST
    o.accounting(late(clock), QUIET)
    assert o.shedding


def test_the_hook_s_overload_control_asks_its_database_whether_it_warms_up():
    hook_runtime._overload = None
    settings_env = {"KONDGE_DSN": "host=/nonexistent dbname=x", "KONDGE_SHED_AFTER_MS": "250"}
    import os
    saved = {k: os.environ.get(k) for k in settings_env}
    os.environ.update(settings_env)
    try:
        hook_runtime.start(lambda level, message: None)
        o, db = hook_runtime._overload, hook_runtime._billing.db
        assert o.settling == db.settling
        assert db.settling()                   # a process just begun warms up
        db.back_at -= db.SETTLE
        assert not db.settling()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        hook_runtime.stop()
        import psycopg2.extensions
        psycopg2.extensions.set_wait_callback(None)   # start() set the deadline's, process-wide


def test_the_front_ends_limit_on_new_logins_is_read_and_checked():
    assert config.load({}).logins_in_flight == 8
    assert config.load({"KONDGE_LOGINS_IN_FLIGHT": "16"}).logins_in_flight == 16
    assert_refused("KONDGE_LOGINS_IN_FLIGHT", ("7", "65537", "many"))


def assert_refused(name, values):
    """Each value of the setting stops the service with a message naming it."""
    for bad in values:
        with pytest.raises(SystemExit, match=name):
            config.load({name: bad})
