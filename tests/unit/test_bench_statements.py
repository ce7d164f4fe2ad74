"""bench/profile_calls.py --statements: pg_stat_statements' rows put as a
table of what each statement costs a call, the costliest first."""

from bench.profile_calls import statement_lines


def row(calls, plans, plan_ms, exec_ms, query):
    return {"calls": calls, "plans": plans, "plan_ms": plan_ms, "exec_ms": exec_ms,
            "query": query}


def test_statements_a_call_the_costliest_first():
    rows = [row(4000, 0, 0.0, 800.0, "SELECT *\n   FROM kondge.radius_account($1)"),
            row(1000, 1000, 21.0, 1.0, "v_hold.id IS NOT NULL OR NOT EXISTS (SELECT 1)"),
            row(2000, 0, 0.0, 1700.0, "SELECT * FROM kondge.radius_card($1)"),
            row(10, 10, 0.1, 0.2, "SELECT kondge.radius_price($1)")]
    lines = statement_lines(rows, calls=1000, top=3)
    assert lines[0].split()[:4] == ["runs", "plans", "plan", "us"]
    assert "1000 calls" in lines[0]
    assert len(lines) == 4                                  # the top 3 only
    assert lines[1].split()[:4] == ["2.00", "0.00", "0.0", "1700.0"]
    assert lines[1].endswith("SELECT * FROM kondge.radius_card($1)")
    # one line a statement, whatever its line breaks
    assert lines[2].split()[:4] == ["4.00", "0.00", "0.0", "800.0"]
    assert lines[2].endswith("SELECT * FROM kondge.radius_account($1)")
    # planned at every call: plans a call equal to runs a call
    assert lines[3].split()[:4] == ["1.00", "1.00", "21.0", "1.0"]


def test_a_statement_is_cut_at_100_characters():
    lines = statement_lines([row(1, 0, 0.0, 1.0, "SELECT " + "x, " * 100)], calls=1)
    figures = "  1.00   0.00      0.0   1000.0  "         # 1 ms = 1000 us a call
    assert lines[1] == figures + ("SELECT " + "x, " * 100)[:100]
