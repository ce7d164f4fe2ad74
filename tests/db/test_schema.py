"""The schema and its functions, as migrate.apply leaves them."""

from pathlib import Path

import psycopg2
import pytest

from kondge_billing.store import migrate

SQL = Path(__file__).resolve().parents[2] / "sql"


def test_every_function_comes_from_its_file_and_none_is_left_over(db):
    assert db.run(lambda cur: migrate.orphan_functions(cur, SQL)) == []
    defined = migrate.defined_functions(SQL / "functions")
    found = set(db.run(lambda cur: (cur.execute(
        """SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'kondge'"""), [r["proname"] for r in cur.fetchall()])[1]))
    assert defined == found
    # one file, one function (a trigger function's file also creates its trigger)
    for path in migrate.function_files(SQL / "functions"):
        names = migrate.defined_functions_in(path)
        assert names == [path.stem], path


def test_applying_again_changes_nothing_and_keeps_the_data(dsn, db):
    db.run(lambda cur: cur.execute("INSERT INTO kondge.access_number (number) VALUES ('123')"))
    assert migrate.apply(dsn, SQL / "migrations", log=lambda m: None) == []
    assert db.run(lambda cur: (cur.execute("SELECT count(*) AS n FROM kondge.access_number"),
                               cur.fetchone())[1])["n"] == 1


def test_a_database_stopped_half_way_through_the_old_migrations_is_refused(dsn, db):
    db.run(lambda cur: cur.execute(
        "DELETE FROM kondge_meta.schema_version WHERE version BETWEEN 6 AND 11"))
    db.run(lambda cur: cur.execute(
        "INSERT INTO kondge_meta.schema_version (version, name) VALUES (5, 'cards')"))
    with pytest.raises(migrate.MigrationError, match="upgrade it with a release"):
        migrate.apply(dsn, SQL / "migrations", log=lambda m: None)


def test_money_moves_only_with_its_ledger_entry_and_only_once(db, pin_key):
    from decimal import Decimal
    from kondge_billing.store import cards
    for number in ("1000000008", "1000000016"):
        db.run(lambda cur: cards.add(cur, pin_key, number, "1234", "10.00", "USD"))
    ids = db.run(lambda cur: (cur.execute(
        "SELECT id FROM kondge.card ORDER BY number"), [r["id"] for r in cur.fetchall()])[1])

    def post(movements):
        """kondge.post_ledger, the one writer of money, as the SQL functions call it."""
        return db.transaction(lambda cur: (cur.execute(
            "SELECT * FROM kondge.post_ledger(%s::bigint[], %s::numeric[], 'adjustment',"
            " %s::text[], 'test')",
            ([m[0] for m in movements], [m[1] for m in movements], [m[2] for m in movements])),
            cur.fetchall())[1])
    posted = post([(ids[0], Decimal("-2.50"), "test:1"), (ids[1], Decimal("1.25"), "test:2")])
    assert sorted(p["balance_after"] for p in posted) == [Decimal("7.50"), Decimal("11.25")]
    assert post([(ids[0], Decimal("-2.50"), "test:1")]) == []          # again: nothing moves
    # one card alone (a call's charge) takes a path of its own: the same outcome
    assert post([(ids[1], Decimal("0.75"), "test:3")]) == [
        {"card_id": ids[1], "amount": Decimal("0.75"), "balance_after": Decimal("12.00")}]
    assert post([(ids[1], Decimal("0.75"), "test:3")]) == []
    assert post([(max(ids) + 1000, Decimal("1.00"), "test:4")]) == []  # no such card
    books = db.run(lambda cur: (cur.execute(
        """SELECT c.balance, (SELECT sum(amount) FROM kondge.ledger_entry l
                               WHERE l.card_id = c.id) AS ledger
             FROM kondge.card c ORDER BY number"""), cur.fetchall())[1])
    assert [(b["balance"], b["ledger"]) for b in books] == [
        (Decimal("7.50"), Decimal("7.50")), (Decimal("12.00"), Decimal("12.00"))]
    for bad in ([(ids[0], Decimal("1"), "t:3"), (ids[0], Decimal("1"), "t:4")],   # twice
                [(ids[0], Decimal("1"), None)]):                               # no key
        with pytest.raises(psycopg2.Error):
            post(bad)
    with pytest.raises(TypeError):
        post([(ids[0], 1.5, "t:5")])                # never a float (store/db.py)
