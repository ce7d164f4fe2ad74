"""make fuzz in small, through the real service, and what it found.

A few thousand packets of bench/fuzz.py (fixed seed, so a failure is
reproduced with `bench/fuzz.py --seed 5 --dump-batch N`), with every check
make fuzz makes after each batch: no process died, no answer where
FreeRADIUS must stay silent, no Access-Accept but for a valid card and PIN
or a bound caller, every answered accounting record found by `kondge
accounting check`, nothing parked, the books balanced, no card below its
limit, no hook exception in the logs. Then the records the fuzzer found
mishandled, each through the real server.
"""

import json

import pytest

from bench import fuzz
from bench import radius_wire as wire
from kondge_billing.store.pins import load_key

SEED = 5
DICTIONARY = wire.project_dictionary(fuzz.HOME / "freeradius" / "dictionary")


@pytest.fixture(scope="module")
def world(stack_ready):
    return fuzz.make_world(stack_ready.db, load_key(stack_ready.settings.pin_key_file), SEED)


def test_fuzzed_packets_break_nothing(stack_ready, world, tmp_path):
    run = fuzz.Run(SEED, packets=3000, batch=1000, rate=800, duration=50, timeout=2.0)
    try:
        result = fuzz.fuzz(stack_ready, world[0], world[1], run, DICTIONARY)
    finally:        # the fuzzer's wrong PINs may lock a gateway the other tests use
        for gateway in world[0].gateways:
            unlocked = stack_ready.kondge("cards", "unlock", "--gateway", gateway.name)
            assert unlocked.returncode == 0, unlocked.stdout + unlocked.stderr
    fuzz.write_report(result, tmp_path)
    assert result["findings_per_check"] == {}, (fuzz.report_text(result) + "\n".join(
        json.dumps(f)[:800] for f in result["findings"][:5]))
    assert result["packets_sent"] >= 3000 and len(result["checks"]) == 3
    # the checks ran on something: accepted logins, answered accounting,
    # packets the server had to drop, every mutation
    assert result["answers"].get("Access-Accept", 0) > 20
    assert result["answers"].get("Access-Reject", 0) > 20
    assert result["answered_accounting"] > 500
    assert sum(result["expected_silence"].values()) > 300
    assert set(result["mutations"]) == {"none"} | set(fuzz.fp.MUTATIONS)
    assert all(c["login_probe"] and c["accounting_check"] for c in result["checks"])


def test_a_refused_card_is_never_accepted_whatever_the_gateway(stack_ready, world):
    """The judge's own footing: the refused cards exist and are refused, the
    valid ones accepted, through the real server."""
    w = world[0]
    for gateway in (g for g in w.gateways if not g.require_ma):
        for number, pin in w.refused_cards.items():
            assert _login(stack_ready, gateway, number, pin)[0] == wire.ACCESS_REJECT
        number, pin = sorted(w.cards.items())[0]
        assert _login(stack_ready, gateway, number, pin)[0] == wire.ACCESS_ACCEPT
        assert _login(stack_ready, gateway, number, "0000")[0] == wire.ACCESS_REJECT


def _login(service, gateway, number, pin):
    from tests.support.radius import RadiusClient
    client = RadiusClient(service.settings.auth_port, service.settings.acct_port,
                          gateway.secret.decode(), source=gateway.address)
    try:
        reply = client.access([("User-Name", number), ("User-Password", pin),
                               ("Called-Station-Id", "18005550100")])
    finally:
        client.close()
    return (reply.code,) if reply else (None,)


def _stop(service, extra, session, conf):
    client = service.client()
    try:
        return client.accounting([("Acct-Status-Type", "Stop"), ("Acct-Session-Id", session),
                                  ("User-Name", "80000000000001"), ("Acct-Session-Time", 60),
                                  ("h323-conf-id", f"h323-conf-id={conf} 0F4411D6 AB5591F0 1"),
                                  ("h323-call-origin", "h323-call-origin=originate")] + extra)
    finally:
        client.close()


def _leg(service, session):
    return service.db.run(lambda cur: (cur.execute(
        "SELECT acct_session_id, stop_received_at FROM kondge.call_leg "
        "WHERE acct_session_id LIKE %s", (session[:8] + "%",)), cur.fetchall())[1])


def _parked(service):
    return service.db.run(lambda cur: (cur.execute(
        "SELECT count(*) AS n FROM kondge.unprocessed_record"), cur.fetchone())[1])["n"]


def test_a_stop_with_a_time_utc_cannot_hold_is_stored_not_parked(stack_ready):
    """Found by make fuzz: 23:59:59.999 PST Fri Dec 31 9999 raised OverflowError."""
    parked = _parked(stack_ready)
    assert _stop(stack_ready, [("h323-disconnect-time", "h323-disconnect-time=23:59:59.999 "
                                                        "PST Fri Dec 31 9999")],
                 "9999A001", "5EED9999") is not None
    assert [(r["acct_session_id"], r["stop_received_at"] is not None)
            for r in _leg(stack_ready, "9999A001")] == [("9999A001", True)]
    assert _parked(stack_ready) == parked


def test_a_record_with_a_nul_is_stored_as_the_hook_saw_it_and_proved(stack_ready):
    """Found by make fuzz: the journal holds the NUL the hook never saw, and
    `kondge accounting check` stopped on it."""
    assert _stop(stack_ready, [], "00AB0001\x00tail", "5EED00AB") is not None
    assert [r["acct_session_id"] for r in _leg(stack_ready, "00AB0001")] == ["00AB0001"]
    check = stack_ready.kondge("--json", "accounting", "check")
    report = json.loads(check.stdout)                           # it ran to the end
    assert not [m for m in report["missing"] if m["acct_session_id"].startswith("00AB0001")]
