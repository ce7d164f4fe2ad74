"""Overload control through the real FreeRADIUS: the site stamps each packet
with the time the process received it, and the hook turns new
authorizations away while accounting waits longer than
KONDGE_SHED_AFTER_MS in the queue (here with KONDGE_AUTH_WHEN_DB_DOWN=
reject, so that they get code 8 rather than silence).

A real queue wait cannot be ordered up in a test, so this server sheds
after one microsecond: every packet waits that long between its receipt and
the hook. That proves the stamp reaches the hook and the refusal reaches
the gateway, while accounting is still stored; the timing rules and the
default (no answer) are unit-tested (tests/unit/test_overload.py).
"""

import time

from kondge_billing.edge import overload as ov
from kondge_billing.store.db import Database
from tests.e2e.conftest import radius_beside
from tests.e2e.test_radius import access
from tests.support.radius import RadiusClient


def test_late_accounting_turns_new_calls_away_with_code_8(stack_ready, service_var):
    with radius_beside(stack_ready, service_var, KONDGE_WORKERS="1",
                       KONDGE_SHED_AFTER_MS="0.001", KONDGE_AUTH_WHEN_DB_DOWN="reject") as (s, _):
        client = RadiusClient(s.auth_port, s.acct_port, "testing123")
        try:
            answered = client.accounting([
                ("Acct-Status-Type", "Start"), ("Acct-Session-Id", "ovl1"),
                ("h323-conf-id", "h323-conf-id=0FF10AD0 00000000 00000000 00000001"),
                ("h323-call-origin", "h323-call-origin=answer"),
                ("Called-Station-Id", "18005550100")])
            assert answered is not None            # accounting itself is always served
            # a process's first seconds are its database's warming up: not
            # overload; nor are the seconds after a slow statement on a busy
            # machine (the database taken for hung, then back). So records
            # go on coming, late (every record is, at 1 us), until the
            # process says it is overloaded: half a second on end, settled
            time.sleep(Database.SETTLE)
            log_file = s.log_dir / "radius.log"
            give_up = time.monotonic() + 4 * Database.SETTLE + 10 * ov.PERSIST
            while "overload: an accounting record waited" not in log_file.read_text():
                assert time.monotonic() < give_up, "late accounting never cut the share"
                assert client.accounting([("Acct-Status-Type", "Accounting-On"),
                                          ("Acct-Session-Id", "0")]) is not None
                time.sleep(ov.PERSIST / 5)
            refused = access(client, "1000000008", "1234")
            assert refused is not None and not refused.accepted
            assert refused.h323("h323-return-code") == "8"
            assert refused.pairs["Reply-Message"] == ["service busy, try again later"]
            assert "h323-credit-amount" not in refused.pairs
            assert client.accounting([("Acct-Status-Type", "Accounting-On"),
                                      ("Acct-Session-Id", "0")]) is not None
        finally:
            client.close()
    log = (s.log_dir / "radius.log").read_text()
    assert "overload: an accounting record waited" in log
    # the record was stored all the same
    legs = stack_ready.db.run(lambda cur: (cur.execute(
        "SELECT count(*) AS n FROM kondge.call_leg WHERE call_id = %s",
        ("0FF10AD0 00000000 00000000 00000001",)), cur.fetchone())[1])
    assert legs["n"] == 1
