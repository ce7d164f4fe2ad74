"""The call path's statements are prepared once a connection (store/prepared.py),
and a prepared statement gone or outdated is prepared again, never an error
a packet sees; inside a transaction the refusal is raised, not retried."""

import psycopg2
import pytest

from kondge_billing.store import prepared
from kondge_billing.store.db import RowDicts
from kondge_billing.store.prepared import Prepared

from tests.db.test_call_path import auth, login, world  # noqa: F401  (world: a fixture)

PAIR = Prepared("test_pair", "SELECT * FROM public.pair(%(a)s, %(b)s)")
FUNCTION = """CREATE FUNCTION public.pair(a integer, b text)
              RETURNS TABLE (twice integer, label text{extra})
              LANGUAGE sql AS $$ SELECT a * 2, b{extra_value} $$"""


class Recorded(RowDicts):
    """A cursor that keeps every statement it sent."""
    sent: list = []

    def execute(self, query, vars=None):
        Recorded.sent.append(query.split(" ")[0])
        return super().execute(query, vars)


@pytest.fixture
def conn(dsn):
    c = psycopg2.connect(dsn)
    c.autocommit = True
    with c.cursor() as cur:
        cur.execute(FUNCTION.format(extra="", extra_value=""))
    Recorded.sent = []
    yield c
    c.close()


def run(conn, a, b="x"):
    with conn.cursor(cursor_factory=Recorded) as cur:
        PAIR.run(cur, {"a": a, "b": b})
        return cur.fetchone()


def prepare_time(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT prepare_time FROM pg_prepared_statements WHERE name = 'test_pair'")
        return [r[0] for r in cur.fetchall()]


def test_placeholders_become_numbered_parameters_in_order_of_first_use():
    p = Prepared("q", "SELECT %(b)s, %(a)s, %(b)s")
    assert p.params == ("b", "a")
    assert p.prepare == "PREPARE q AS SELECT $1, $2, $1"
    assert p.execute == "EXECUTE q (%s, %s)"
    assert Prepared("n", "SELECT 1").execute == "EXECUTE n"


def test_prepared_once_then_only_executed(conn):
    assert run(conn, 1, "one") == {"twice": 2, "label": "one"}
    first = prepare_time(conn)
    assert len(first) == 1
    assert run(conn, 21, "two") == {"twice": 42, "label": "two"}
    assert run(conn, None, None) == {"twice": None, "label": None}
    assert prepare_time(conn) == first
    assert Recorded.sent == ["PREPARE", "EXECUTE", "EXECUTE", "EXECUTE"]


def test_a_new_connection_prepares_afresh_without_a_refusal(conn, dsn):
    run(conn, 1)
    other = psycopg2.connect(dsn)
    other.autocommit = True
    try:
        Recorded.sent = []
        assert run(other, 5) == {"twice": 10, "label": "x"}
        # no EXECUTE refused first: the statements prepared are kept by connection
        assert Recorded.sent == ["PREPARE", "EXECUTE"]
    finally:
        other.close()


def test_statements_dropped_by_the_session_are_prepared_again(conn):
    run(conn, 1)
    with conn.cursor() as cur:
        cur.execute("DEALLOCATE ALL")
    Recorded.sent = []
    assert run(conn, 4) == {"twice": 8, "label": "x"}
    assert Recorded.sent == ["EXECUTE", "DEALLOCATE", "PREPARE", "EXECUTE"]


def test_a_function_replaced_with_other_columns_is_prepared_again(conn):
    run(conn, 1)
    with conn.cursor() as cur:
        cur.execute("DROP FUNCTION public.pair(integer, text)")
        cur.execute(FUNCTION.format(extra=", more text", extra_value=", 'new'"))
    assert run(conn, 3, "y") == {"twice": 6, "label": "y", "more": "new"}


def test_inside_a_transaction_the_refusal_is_raised(conn):
    run(conn, 1)
    with conn.cursor() as cur:
        cur.execute("DROP FUNCTION public.pair(integer, text)")
        cur.execute(FUNCTION.format(extra=", more text", extra_value=", 'new'"))
    conn.autocommit = False
    with pytest.raises(psycopg2.errors.FeatureNotSupported, match="must not change result type"):
        run(conn, 3)
    conn.rollback()


def test_the_statements_own_error_is_raised_once(conn):
    with conn.cursor() as cur:
        cur.execute("""CREATE FUNCTION public.refuse() RETURNS integer LANGUAGE plpgsql AS $$
                       BEGIN RAISE EXCEPTION 'not here' USING ERRCODE = 'feature_not_supported';
                       END $$""")
    refuse = Prepared("test_refuse", "SELECT public.refuse()")
    with pytest.raises(psycopg2.errors.FeatureNotSupported, match="not here"):
        with conn.cursor(cursor_factory=Recorded) as cur:
            refuse.run(cur, {})
    assert Recorded.sent == ["PREPARE", "EXECUTE"]
    assert not prepared.refused_before_running(psycopg2.errors.FeatureNotSupported("not here"))


def test_the_call_path_runs_prepared_statements(world, billing, db):
    auth(billing, login("1000000008", "1234"))
    auth(billing, login("1000000008", "1234", called="447911123456"))
    names = db.run(lambda cur: (cur.execute("SELECT name FROM pg_prepared_statements"),
                                cur.fetchall())[1])
    assert {"kondge_radius_card", "kondge_radius_hold"} <= {r["name"] for r in names}
