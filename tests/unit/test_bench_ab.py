"""bench/ab.py: two trees' rounds compared side by side, and the file
barrier that makes their rounds begin together."""

import threading
import time

import pytest

from bench import ab
from bench.profile_calls import FileBarrier


def rnd(n, backend, python, wal=5000):
    return {"round": n, "backend_cpu_ms": backend, "python_cpu_ms": python, "wal_bytes": wal}


def test_each_round_is_compared_with_the_base_round_run_beside_it():
    result = ab.compare([rnd(1, 4.0, 2.0), rnd(2, 8.0, 2.0), rnd(3, 5.0, 1.0)],
                        [rnd(1, 3.0, 2.2), rnd(2, 7.6, 1.8), rnd(3, 5.5, 1.0, 4000)])
    assert [p["backend_ratio"] for p in result["pairs"]] == [0.75, 0.95, 1.1]
    assert [p["python_ratio"] for p in result["pairs"]] == [1.1, 0.9, 1.0]
    assert result["pairs"][2]["tree_wal_bytes"] == 4000
    assert result["summary"]["backend"] == {"median_ratio": 0.95, "tree_cheaper_rounds": 2,
                                            "rounds": 3}
    # backend and Python together, round by round: 5.2/6, 9.4/10, 6.5/6
    assert result["summary"]["both"]["median_ratio"] == 0.94
    assert result["summary"]["both"]["tree_cheaper_rounds"] == 2
    lines = ab.report_lines("HEAD", result)
    assert lines[0].startswith("bench/ab.py: the working tree against HEAD")
    assert "backend: tree / base median 0.95, the tree cheaper in 2 of 3 rounds" in lines


def test_a_round_begins_only_when_both_parties_reached_it(tmp_path):
    began = []
    first = FileBarrier(tmp_path, name="base")
    second = FileBarrier(tmp_path, name="tree")
    waiting = threading.Thread(target=lambda: (first.wait(1), began.append(time.monotonic())))
    waiting.start()
    time.sleep(0.3)
    assert began == [] and waiting.is_alive()           # alone at round 1: still waiting
    arrived = time.monotonic()
    second.wait(1)
    waiting.join(5)
    assert len(began) == 1 and began[0] >= arrived


def test_a_party_that_never_comes_ends_the_wait_with_a_message(tmp_path):
    with pytest.raises(SystemExit, match="never reached round 3"):
        FileBarrier(tmp_path, timeout=0.2, name="alone").wait(3)


def test_no_folder_no_waiting():
    FileBarrier(None).wait(1)        # returns at once (a run without bench/ab.py)
