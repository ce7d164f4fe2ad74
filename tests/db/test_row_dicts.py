"""Database.run hands rows over as plain dicts, by column name, whichever way
they are fetched."""

from decimal import Decimal

ROWS = "SELECT n, 'x' || n AS label, n * 1.5 AS amount FROM generate_series(1, 3) n ORDER BY n"


def test_one_row_is_a_plain_dict_and_no_row_is_none(db):
    row = db.run(lambda cur: (cur.execute(ROWS), cur.fetchone())[1])
    assert type(row) is dict
    assert row == {"n": 1, "label": "x1", "amount": Decimal("1.5")}
    assert db.run(lambda cur: (cur.execute("SELECT 1 AS a WHERE false"), cur.fetchone())[1]) is None


def test_all_many_and_iterated_rows_agree(db):
    every = db.run(lambda cur: (cur.execute(ROWS), cur.fetchall())[1])
    assert [r["label"] for r in every] == ["x1", "x2", "x3"]
    assert all(type(r) is dict for r in every)
    some = db.run(lambda cur: (cur.execute(ROWS), cur.fetchmany(2), cur.fetchmany())[1:])
    assert some == ([every[0], every[1]], [every[2]])
    assert db.run(lambda cur: (cur.execute(ROWS), list(cur))[1]) == every
    assert db.transaction(lambda cur: (cur.execute(ROWS), cur.fetchall())[1]) == every
