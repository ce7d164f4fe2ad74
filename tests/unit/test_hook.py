"""The hook's contract with rlm_python3, without a database.

Exact int codes and tuples of string pairs, and never an exception out of
the hook, whatever the packet holds.
"""

from kondge_billing.store.gateways import Gateway, GatewayDirectory
from kondge_billing.calls.service import Billing
from tests.support.hook import load_hook

CISCO = Gateway(1, "gw", "127.0.0.1", "s", "cisco", "optional", "originate", 1)
NO_ANSWER = (("Kondge-No-Answer", "1"),)


class NoDatabase:
    """Fails the test if the code under test reaches for the database."""

    def run(self, work):
        raise AssertionError("the database must not be touched")


class BrokenDatabase:
    def run(self, work):
        raise RuntimeError("boom")


def billing(db):
    return Billing(db, b"k" * 32, GatewayDirectory(lambda: [CISCO]))


def test_malformed_card_number_is_refused_without_the_database():
    hook, radiusd, _ = load_hook(billing(NoDatabase()))
    for name in ("12ab", "1" * 21, "", "\x00\x01", "1" * 4000):
        result = hook.authorize((("User-Name", name), ("User-Password", "1"),
                                 ("Kondge-Gateway-Address", "127.0.0.1")))
        assert type(result) is tuple and len(result) == 3
        code, reply, control = result
        assert type(code) is int and code == radiusd.RLM_MODULE_REJECT
        assert reply == (("h323-return-code", "h323-return-code=14"),
                         ("Reply-Message", "malformed card number"))
        assert control == ()
        assert all(type(v) is str for pair in reply for v in pair)


def test_unknown_gateway_gets_no_answer():
    hook, radiusd, logged = load_hook(billing(NoDatabase()))
    code, reply, control = hook.authorize((("User-Name", "1000000008"),
                                           ("Kondge-Gateway-Address", "10.9.9.9")))
    assert code == radiusd.RLM_MODULE_FAIL and reply == () and control == NO_ANSWER
    assert any("10.9.9.9" in m for _, m in logged)


def test_unexpected_error_is_logged_and_fails_without_raising(tmp_path):
    hook, radiusd, logged = load_hook(billing(BrokenDatabase()))
    code, _, control = hook.authorize((("User-Name", "1000000008"), ("User-Password", "1"),
                                       ("Kondge-Gateway-Address", "127.0.0.1")))
    assert code == radiusd.RLM_MODULE_FAIL and control == NO_ANSWER
    assert any("Traceback" in m and "boom" in m for _, m in logged)
    record = (("Acct-Status-Type", "Stop"), ("Acct-Session-Id", "x"),
              ("Kondge-Gateway-Address", "127.0.0.1"))
    # kept nowhere (the database fails, the spool cannot be written): not answered
    assert hook.accounting(record) == (radiusd.RLM_MODULE_FAIL, (), NO_ANSWER)
    assert any("ACCOUNTING NOT ANSWERED" in m for _, m in logged)
    # with a spool that can be written, kept there and answered
    hook, radiusd, logged = load_hook(billing(BrokenDatabase()), spool=tmp_path)
    assert hook.accounting(record) == radiusd.RLM_MODULE_OK
    assert '"Acct-Session-Id", "x"' in (tmp_path / "records.jsonl").read_text()


def test_garbage_pairs_do_not_crash():
    hook, radiusd, _ = load_hook(billing(NoDatabase()))
    code, _, control = hook.authorize(None)
    assert code == radiusd.RLM_MODULE_FAIL        # no gateway address: dropped
    assert control == NO_ANSWER
    code = hook.accounting((("Acct-Status-Type", "Accounting-On"), 42, ("x",),
                            ("Kondge-Gateway-Address", "127.0.0.1")))
    assert code == radiusd.RLM_MODULE_OK          # nothing to store, answered


class DeadDatabase:
    def run(self, work):
        from kondge_billing.errors import Unavailable
        raise Unavailable("database down")


def test_database_down_policy_silent_or_reject():
    b = billing(DeadDatabase())
    hook, radiusd, _ = load_hook(b)
    pairs = (("User-Name", "1000000008"), ("User-Password", "1234"),
             ("Kondge-Gateway-Address", "127.0.0.1"))
    assert hook.authorize(pairs) == (radiusd.RLM_MODULE_FAIL, (), NO_ANSWER)
    b.auth_when_db_down = "reject"
    code, reply, _ = hook.authorize(pairs)
    assert code == radiusd.RLM_MODULE_REJECT
    assert ("h323-return-code", "h323-return-code=8") in reply


class ExplodingBilling(Billing):
    def account(self, gateway, rec):
        raise ValueError("a bug met an odd packet")


def test_unprocessable_accounting_record_is_kept_and_answered():
    kept = []

    class Db:
        def run(self, work):
            class Cur:
                def execute(self, sql, params):
                    kept.append(params)
            return work(Cur())

    b = ExplodingBilling(Db(), b"k" * 32, GatewayDirectory(lambda: [CISCO]))
    hook, radiusd, logged = load_hook(b)
    code = hook.accounting((("Acct-Status-Type", "Stop"), ("Acct-Session-Id", "x1"),
                            ("Kondge-Gateway-Address", "127.0.0.1")))
    assert code == radiusd.RLM_MODULE_OK
    assert kept and '"x1"' in kept[0][0] and "odd packet" in kept[0][1]


class ParkingDatabase:
    """Keeps what the call path parks; every other statement fails the test."""

    def __init__(self, down=False):
        self.kept, self.down = [], down

    def run(self, work):
        if self.down:
            from kondge_billing.errors import Unavailable
            raise Unavailable("database down")
        outer = self

        class Cur:
            def execute(self, sql, params):
                assert "radius_park" in sql or "unprocessed_record" in sql, sql
                outer.kept.append(params)
        return work(Cur())


def test_accounting_with_no_or_an_unknown_status_is_parked_then_answered():
    for status, named in (((), "no Acct-Status-Type"),
                          ((("Acct-Status-Type", "Tunnel-Start"),), "'Tunnel-Start'"),
                          ((("Acct-Status-Type", "99"),), "'99'")):
        db = ParkingDatabase()
        hook, radiusd, logged = load_hook(billing(db))
        code = hook.accounting(status + (("Acct-Session-Id", "odd-1"),
                                         ("Kondge-Gateway-Address", "127.0.0.1")))
        assert code == radiusd.RLM_MODULE_OK and type(code) is int
        [(pairs, error)] = db.kept
        assert '"odd-1"' in pairs and named in error and "gateway gw" in error
        assert any(named in message for _level, message in logged)


def test_with_the_database_down_an_odd_record_is_answered_only_once_spooled(tmp_path):
    pairs = (("Acct-Session-Id", "odd-2"), ("Kondge-Gateway-Address", "127.0.0.1"))
    hook, radiusd, _logged = load_hook(billing(ParkingDatabase(down=True)), spool=tmp_path)
    assert hook.accounting(pairs) == radiusd.RLM_MODULE_OK
    assert b"odd-2" in b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    # nowhere to keep it: not answered (the gateway sends it again)
    hook, radiusd, _logged = load_hook(billing(ParkingDatabase(down=True)))
    assert hook.accounting(pairs) == (radiusd.RLM_MODULE_FAIL, (), NO_ANSWER)


def test_accounting_on_and_off_are_still_answered_without_the_database():
    hook, radiusd, _logged = load_hook(billing(NoDatabase()))
    for status in ("Accounting-On", "Accounting-Off"):
        assert hook.accounting((("Acct-Status-Type", status), ("Acct-Session-Id", "0"),
                                ("Kondge-Gateway-Address", "127.0.0.1"))) == radiusd.RLM_MODULE_OK
