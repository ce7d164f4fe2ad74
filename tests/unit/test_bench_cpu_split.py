"""bench/cpu_split.py: perf's samples put down to components, and the CPU a
call each component costs; and floor.py refusing a --perf-rate it cannot run."""

import shutil

import pytest

from bench import cpu_split, floor

# the shape of `perf report --no-children --sort comm,dso --stdio -g none`
REPORT = """\
# To display the perf.data header info, please use --header/--header-only options.
#
# Overhead  Command          Shared Object
# ........  ...............  ..........................................
#
    30.00%  postgres         postgres
    20.00%  freeradius       libpython3.11.so.1.0
    10.00%  freeradius       [kernel.kallsyms]
     6.00%  postgres         [kernel.kallsyms]
     5.00%  freeradius       libfreeradius-radius.so
     4.00%  freeradius       libc.so.6
     2.00%  freeradius       _psycopg.cpython-311-x86_64-linux-gnu.so
     1.00%  freeradius       libpq.so.5.15
     0.50%  freeradius       rlm_python3.so
     3.00%  python           python3.11
     2.00%  python           [kernel.kallsyms]
     1.50%  runuser          [kernel.kallsyms]
     0.50%  postgres         plpgsql.so
    14.50%  swapper          [kernel.kallsyms]
"""


def test_samples_go_to_their_component_by_process_and_code():
    shares = cpu_split.classify(REPORT)
    assert shares == {"freeradius": 9.0, "python": 23.5, "freeradius kernel": 10.0,
                      "postgres": 30.5, "postgres kernel": 6.0, "load generator": 5.0,
                      "other": 1.5, "idle": 14.5}
    assert sum(shares.values()) == pytest.approx(100.0)


def test_a_components_cpu_a_call_is_its_share_of_the_machine_over_the_calls():
    # 2 CPUs, 100 calls/s: 10 % of the machine is 0.2 CPU-s a second, 2 ms a call
    ms = cpu_split.per_call({"postgres": 10.0, "python": 5.0, "idle": 85.0}, 2, 100.0)
    assert ms == {"postgres": 2.0, "python": 1.0}
    assert cpu_split.per_call({"postgres": 10.0}, 2, 0) == {}


def test_the_table_gives_the_services_excess_over_the_floor_part_by_part():
    split = {"floor": {"rate": 120.0, "ms_a_call": {"postgres": 1.0, "python": 0.5}},
             "service": {"rate": 120.0, "ms_a_call": {"postgres": 3.5, "python": 2.0}}}
    lines = cpu_split.table(split, floor.KINDS)
    assert "120 calls/s offered" in lines[1]
    assert lines[2].split() == ["component", "floor", "service", "service-floor"]
    row = {line[2:20].strip(): line[20:].split() for line in lines[3:]}
    assert list(row) == list(cpu_split.COMPONENTS[:-1]) + ["total"]
    assert row["postgres kernel"] == ["0.000", "0.000", "0.000"]
    assert row["postgres"] == ["1.000", "3.500", "2.500"]
    assert row["python"] == ["0.500", "2.000", "1.500"]
    assert row["total"] == ["1.500", "5.500", "4.000"]
    assert cpu_split.table({}, floor.KINDS) == []


def test_floor_refuses_a_perf_rate_it_does_not_run(capsys):
    with pytest.raises(SystemExit) as exit_:
        floor.parse_args(["--steps", "100,200", "--perf-rate", "150"])
    assert exit_.value.code == 2
    assert "--perf-rate 150 is not one of --steps 100,200" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        floor.parse_args(["--steps", "100", "--seconds", "8", "--perf-rate", "100",
                          "--perf-seconds", "7"])
    assert "leave 2 s of the step" in capsys.readouterr().err


def test_without_perf_the_reason_is_given(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    assert "apt-get install linux-perf" in cpu_split.unavailable()


def test_the_rows_and_priced_kinds_have_their_columns_between_the_floor_and_the_service():
    split = {kind: {"rate": 140.0, "ms_a_call": {"postgres": pg}}
             for kind, pg in (("service", 4.0), ("priced", 3.0), ("rows", 2.0), ("floor", 1.0))}
    lines = cpu_split.table(split, floor.KINDS)
    assert lines[2].split() == ["component", "floor", "rows", "priced", "service",
                                "service-floor"]
    postgres = next(line for line in lines if line.split()[:1] == ["postgres"])
    assert postgres.split()[1:] == ["1.000", "2.000", "3.000", "4.000", "3.000"]
