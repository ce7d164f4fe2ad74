"""The hook's CPU counted inside FreeRADIUS (kondge_billing/edge/hook_profile.py,
bench/floor.py --hook-cpu / --hook-profile): off by default, each packet's
thread CPU added to its kind, the processes' totals added up between two
reads, and the functions by their own CPU."""

import time

from bench import floor
from kondge_billing.edge import hook_profile, hook_runtime
from tests.support.hook import load_hook

START = (("Acct-Status-Type", "Start"), ("Acct-Session-Id", "1"))
STOP = (("Acct-Status-Type", "Stop"), ("Acct-Session-Id", "1"))


def burn(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_off_unless_the_environment_names_a_prefix():
    assert hook_profile.HookCpu.from_env({}) is None
    assert hook_profile.HookCpu.from_env({"KONDGE_HOOK_CPU": ""}) is None
    counts = hook_profile.HookCpu.from_env({"KONDGE_HOOK_CPU": "/x/cpu"})
    assert counts.profile is None and counts.path.name.startswith("cpu.")
    profiled = hook_profile.HookCpu.from_env({"KONDGE_HOOK_CPU": "/x/cpu,functions"})
    assert profiled.profile is not None and profiled.path.parent.name == "x"
    assert profiled.path.name.startswith("cpu.") and profiled.setting == "/x/cpu,functions"


def test_the_record_s_kind_is_read_from_its_status_alone():
    assert hook_profile.accounting_kind(START) == "start"
    assert hook_profile.accounting_kind(STOP) == "stop"
    assert hook_profile.accounting_kind((("Acct-Status-Type", "3"),)) == "interim"
    assert hook_profile.accounting_kind((("Acct-Status-Type", "Accounting-On"),)) == "other"
    assert hook_profile.accounting_kind((("User-Name", "x"), "odd", None)) == "other"
    assert hook_profile.accounting_kind(None) == "other"


def test_thread_cpu_is_added_to_its_kind_and_written_every_so_many_packets(tmp_path):
    (tmp_path / "hook").mkdir()
    prefix = str(tmp_path / "hook" / "cpu")
    cpu = hook_profile.HookCpu(prefix, every=4)
    before = hook_profile.read_totals(prefix)
    for _ in range(2):
        assert cpu.run("stop", lambda: burn(0.004) or "answered") == "answered"
        cpu.run("access", lambda: burn(0.001))
    # four packets: written once
    after = hook_profile.read_totals(prefix)
    got = hook_profile.per_packet(before, after)
    assert set(got) == {"access", "stop"}
    assert got["stop"]["packets"] == 2 and got["access"]["packets"] == 2
    assert 4000 <= got["stop"]["us_a_packet"] < 40000
    assert 1000 <= got["access"]["us_a_packet"] < got["stop"]["us_a_packet"]
    assert 0 <= got["stop"]["system_share"] <= 1
    assert got["stop"]["wall_us_a_packet"] >= got["stop"]["us_a_packet"]
    # a fifth packet is not written until the eighth
    cpu.run("stop", lambda: None)
    assert hook_profile.read_totals(prefix) == after


def test_a_count_that_cannot_be_written_costs_the_packet_nothing(tmp_path):
    cpu = hook_profile.HookCpu(str(tmp_path / "no-such-folder" / "cpu"), functions=True,
                               every=1)
    assert cpu.run("stop", lambda: "answered") == "answered"
    assert cpu.totals["stop"][0] == 1


def test_the_wall_time_counts_what_the_packet_waited_for(tmp_path):
    (tmp_path / "hook").mkdir()
    prefix = str(tmp_path / "hook" / "cpu")
    cpu = hook_profile.HookCpu(prefix, every=1)
    before = hook_profile.read_totals(prefix)
    cpu.run("access", lambda: time.sleep(0.02))
    got = hook_profile.per_packet(before, hook_profile.read_totals(prefix))["access"]
    assert got["wall_us_a_packet"] >= 20000 and got["us_a_packet"] < 10000


def test_the_totals_of_every_process_add_up_and_a_torn_file_is_skipped(tmp_path):
    prefix = tmp_path / "cpu"
    (tmp_path / "cpu.11.json").write_text(
        '{"pid": 11, "totals": {"access": [3, 3000000, 0.002, 0.001, 9000000]}}')
    (tmp_path / "cpu.12.json").write_text(
        '{"pid": 12, "totals": {"access": [1, 1000000, 0.001, 0.0, 3000000], '
        '"stop": [2, 4000000, 0, 0, 5000000]}}')
    (tmp_path / "cpu.13.json").write_text('{"pid": 13, "tot')
    totals = hook_profile.read_totals(str(prefix))
    assert totals["access"] == [4, 4000000, 0.003, 0.001, 12000000]
    got = hook_profile.per_packet(hook_profile.read_totals(str(tmp_path / "none")), totals)
    assert got["access"] == {"packets": 4, "us_a_packet": 1000.0, "system_share": 0.25,
                             "wall_us_a_packet": 3000.0}
    assert got["stop"]["system_share"] is None and "start" not in got


def test_with_functions_the_profile_names_the_hook_s_own_work(tmp_path):
    prefix = str(tmp_path / "cpu")
    cpu = hook_profile.HookCpu(prefix, functions=True, every=1)
    cpu.run("start", lambda: burn(0.002))
    assert "burn" in hook_profile.top_functions(prefix)
    assert hook_profile.top_functions(str(tmp_path / "none")) == ""


def test_the_real_hook_counts_each_kind_when_asked(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(hook_runtime, "handle_accounting",
                        lambda billing, pairs, log, overload, keep: seen.append(pairs) or "ok")
    monkeypatch.setattr(hook_runtime, "handle_authorize",
                        lambda billing, pairs, log, overload: ("ok", [], []))
    hook, radiusd, _logged = load_hook(billing=None)
    prefix = str(tmp_path / "cpu")
    monkeypatch.setattr(hook_runtime, "_cpu", hook_profile.HookCpu(prefix, every=1))
    assert hook.accounting(STOP) == radiusd.RLM_MODULE_OK
    assert hook.authorize((("User-Name", "1"),)) == (radiusd.RLM_MODULE_OK, (), ())
    totals = hook_profile.read_totals(prefix)
    assert totals["stop"][0] == 1 and totals["access"][0] == 1 and seen == [STOP]
    # off: nothing counted, the answer the same
    monkeypatch.setattr(hook_runtime, "_cpu", None)
    assert hook.accounting(START) == radiusd.RLM_MODULE_OK
    assert hook_profile.read_totals(prefix)["start"][0] == 0


def test_the_floor_report_gives_each_step_s_hook_cpu_a_packet_and_a_call():
    step = {"run": "service", "offered_calls_per_second": 140,
            "hook_cpu": {k: {"packets": 10, "us_a_packet": us, "system_share": share,
                             "wall_us_a_packet": wall}
                         for k, us, share, wall in (("access", 600.0, 0.2, 1500.0),
                                                    ("start", 400.0, 0.1, 1000.0),
                                                    ("stop", 700.0, 0.15, 2000.0))}}
    lines = floor.hook_lines({"runs": [{"run": "floor"}, step], "hook_functions": "fn table"})
    assert any(line.split()[:1] == ["140"] and "600 (0.20) /  1500" in line
               and line.endswith("3400 /   9000") for line in lines)
    assert lines[-1] == "fn table"
    assert floor.hook_lines({"runs": [{"run": "service"}]}) == []
