"""The schema and its functions, as migrate.apply leaves them."""

from pathlib import Path

import psycopg2
import pytest

from kondge_billing import migrate

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
    from kondge_billing import cards
    db.run(lambda cur: cards.add(cur, pin_key, "1000000008", "1234", "10.00", "USD"))

    def post(cur, amount, key):
        cur.execute("""SELECT kondge.post_ledger(id, %s, 'adjustment', %s) AS after
                         FROM kondge.card WHERE number = '1000000008'""", (amount, key))
        return cur.fetchone()["after"]
    from decimal import Decimal
    assert db.run(lambda cur: post(cur, Decimal("-2.50"), "test:1")) == Decimal("7.50")
    assert db.run(lambda cur: post(cur, Decimal("-2.50"), "test:1")) is None     # again: nothing
    row = db.run(lambda cur: (cur.execute(
        """SELECT balance, (SELECT sum(amount) FROM kondge.ledger_entry l
                             WHERE l.card_id = c.id) AS ledger
             FROM kondge.card c WHERE number = '1000000008'"""), cur.fetchone())[1])
    assert row["balance"] == row["ledger"] == Decimal("7.50")
    with pytest.raises(psycopg2.Error):
        db.run(lambda cur: post(cur, None, "test:2"))
