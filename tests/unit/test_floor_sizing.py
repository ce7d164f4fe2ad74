"""bench/floor.py's sizing: CPU-seconds per 1,000 complete calls of each kind,
split into FreeRADIUS, Python and PostgreSQL, from the steps without loss."""

from bench import floor


def run(kind, offered, completed, front, workers, pg, lost=0):
    return {"run": kind, "offered_calls_per_second": offered, "completed": completed,
            "lost_total": lost, "failed_total": 0, "frontend_cpu_seconds": front,
            "answering_cpu_seconds": workers, "postgres_cpu_seconds": pg}


def test_the_hook_s_share_is_what_the_kind_costs_above_unlang_workers():
    s = floor.sizing([run("unlang", 100, 1000, 0.5, 0.7, 0.0),
                      run("floor", 100, 1000, 0.5, 1.2, 1.0),
                      run("service", 100, 1000, 0.6, 4.1, 5.0)])
    assert s["unlang"]["freeradius_cpu_s"] == 1.2 and s["unlang"]["python_cpu_s"] == 0.0
    assert (s["floor"]["freeradius_cpu_s"], s["floor"]["python_cpu_s"],
            s["floor"]["postgres_cpu_s"], s["floor"]["total_cpu_s"]) == (1.2, 0.5, 1.0, 2.7)
    assert (s["service"]["python_cpu_s"], s["service"]["total_cpu_s"]) == (3.5, 9.7)
    assert s["service"]["calls_per_second_per_postgres_core"] == 200


def test_steps_that_lost_calls_count_only_when_every_step_did():
    s = floor.sizing([run("unlang", 100, 1000, 0.5, 0.7, 0.0),
                      run("service", 100, 1000, 0.6, 4.1, 5.0),
                      run("service", 400, 500, 9.0, 9.0, 9.0, lost=1900)])
    assert s["service"]["steps"] == [100] and s["service"]["clean_steps_only"]
    assert s["service"]["postgres_cpu_s"] == 5.0
    lossy = floor.sizing([run("service", 400, 500, 1.0, 1.0, 2.0, lost=1900)])
    assert not lossy["service"]["clean_steps_only"]
    assert lossy["service"]["postgres_cpu_s"] == 4.0
    assert lossy["service"]["python_cpu_s"] is None     # no unlang workers to subtract
    lines = floor.sizing_lines(lossy)
    assert "(every step lost calls)" in lines[-1]


def test_the_ratios_set_the_service_against_the_floor_its_rows_and_their_pricing():
    summary = {kind: {"most_calls_per_second": most, "clean_calls_per_second": clean}
               for kind, most, clean in (("unlang", 800.0, 800.0), ("floor", 400.0, 300.0),
                                         ("rows", 250.0, 200.0), ("priced", 200.0, 160.0),
                                         ("service", 150.0, 100.0))}
    r = floor.ratios(summary)
    assert r["rows/floor clean"] == 0.667 and r["rows/floor most"] == 0.625
    assert r["priced/floor clean"] == 0.533 and r["priced/rows most"] == 0.8
    assert r["service/priced clean"] == 0.625 and r["service/priced most"] == 0.75
    assert r["service/rows clean"] == 0.5 and r["service/rows most"] == 0.6
    assert r["service/floor clean"] == 0.333
    # a run without the rows or priced workers (--no-rows, --no-priced) has no ratio of theirs
    del summary["rows"]
    assert not [k for k in floor.ratios(summary) if "rows" in k]
    assert "service/priced clean" in floor.ratios(summary)
    del summary["priced"]
    assert not [k for k in floor.ratios(summary) if "priced" in k]
