"""The bench's judging logic for issue 12's bounds and its CPU pinning: per-second p99
windows, every-repetition targets, the history of the 3-shadow bound, and the affinity
helper on a real child process (no load, no timing)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.affinity import Pinner, pin_tree, pinned_plan, thread_ids, tree_pids
from benchmarks.checks import (
    around,
    every_rep,
    full_seconds,
    read_history,
    second_bound,
    update_history,
    worst_second,
)
from benchmarks.load import parse_exposition, scorer_deltas, select
from benchmarks.report import count_targets
from benchmarks.run import machine_during


def _timeline(*p99s: float, completed: int = 1000) -> list[dict[str, Any]]:
    return [
        {
            "second": i,
            "completed": completed,
            "failed": 0,
            "opened": 10 * i,
            "p50_ms": 1.0,
            "p99_ms": p,
            "max_ms": p,
        }
        for i, p in enumerate(p99s)
    ]


def test_partial_seconds_at_the_edges_are_not_judged() -> None:
    timeline = _timeline(50.0, 2.0, 3.0, 2.5, 90.0)
    timeline[0]["completed"], timeline[-1]["completed"] = 200, 240  # under a quarter of 1000
    assert [s["second"] for s in full_seconds(timeline)] == [1, 2, 3]
    assert worst_second(timeline) == timeline[2]
    assert worst_second([]) is None


def test_the_second_of_an_event_and_the_one_after() -> None:
    timeline = _timeline(1.0, 2.0, 3.0, 4.0)
    assert [s["second"] for s in around(timeline, 1.7)] == [1, 2]
    assert [s["second"] for s in around(timeline, 3.2)] == [3]


def test_one_second_over_twice_the_steady_p99_fails_the_bound_and_is_named() -> None:
    runs = {"change rep 1": _timeline(2.0, 2.2, 2.1), "promotions rep 1": _timeline(2.0, 9.0, 2.0)}
    judged = second_bound(runs, steady_p99_ms=2.0)
    assert judged["bound_ms"] == 4.0
    assert judged["met"] is False
    assert judged["worst"] == {
        "run": "promotions rep 1",
        "second": 1,
        "p99_ms": 9.0,
        "opened": 10,  # the connections the generator opened in that second
        "ratio": 4.5,
        "over": True,
    }
    # The same seconds judged without the first requests on new connections.
    settled = _timeline(2.0, 9.0, 2.0)
    for second, p99 in zip(settled, (2.0, 3.0, 2.5), strict=True):
        second["settled_p99_ms"] = p99
    judged = second_bound({"promotions rep 1": settled}, 2.0, key="settled_p99_ms")
    assert judged["met"] is True
    assert judged["worst"]["p99_ms"] == 3.0
    assert second_bound(runs, 2.0, key="settled_p99_ms")["met"] is False  # no such seconds
    assert second_bound({"change rep 1": _timeline(2.0, 3.9)}, 2.0)["met"] is True
    assert second_bound({}, 2.0)["met"] is False  # nothing measured is nothing met


def test_every_repetition_must_meet_the_bound() -> None:
    assert every_rep([1.1, 1.2, 1.25], "<=", 1.25) is True
    assert every_rep([1.1, 1.3, 0.7], "<=", 1.25) is False  # the median (1.1) would pass
    assert every_rep([0.7, 0.6], ">=", 0.6) is True
    assert every_rep([], "<=", 1.25) is False


def test_the_history_keeps_the_last_three_runs(tmp_path: Path) -> None:
    path = tmp_path / "bench" / "history.json"
    assert read_history(path) == []
    for run in range(5):
        kept = update_history(path, {"run": run, "per_rep": [1.0, 1.1, 1.2]})
    assert [h["run"] for h in kept] == [2, 3, 4]
    assert read_history(path) == kept
    path.write_text("not json")
    assert [h["run"] for h in update_history(path, {"run": 5})] == [5]


def test_the_history_says_what_the_machine_was_doing_during_the_compared_runs() -> None:
    def run(steal_ms: int) -> dict[str, Any]:
        return {"cpu": {"total": {"busy_ms": 9000, "steal_ms": steal_ms, "total_ms": 16000}}}

    reps = [
        {"shadows0": run(1450), "shadows3": run(2180), "max/hello": {"rate_achieved": 17541.3}},
        {"shadows0": run(20), "shadows3": run(0), "max/hello": {"rate_achieved": 18865.5}},
        # No CPU reading (not Linux) in one of the two runs: unknown, not 0.
        {"shadows0": run(5), "shadows3": {"cpu": None}, "max/hello": {"rate_achieved": 18234.0}},
    ]
    assert machine_during({"reps": reps}) == {
        "steal_ms_per_rep": [3630, 20, None],
        "hello_max_rps": 18234,
    }
    assert machine_during({"reps": [{}]}) == {"steal_ms_per_rep": [None], "hello_max_rps": None}


EXPOSITION = """# HELP shadowline_decisions_total x
shadowline_decisions_total{role="production",version="v1",decision="allow"} 100.0
shadowline_decisions_total{role="shadow",version="s1",decision="allow"} 90.0
shadowline_decisions_total{role="shadow",version="s2",decision="block"} 5.0
shadowline_shadow_errors_total{version="s1",kind="timeout"} 3.0
shadowline_shadow_shed_total 2.0
shadowline_event_loop_lag_seconds_bucket{le="0.002"} 990.0
shadowline_event_loop_lag_seconds_bucket{le="+Inf"} 1000.0
shadowline_event_loop_lag_seconds_count 1000.0
shadowline_event_loop_lag_max_seconds 0.0125
"""


def test_scorer_deltas_count_shadow_outcomes_and_loop_lag_by_label() -> None:
    after = parse_exposition(EXPOSITION)
    assert select(after, "shadowline_decisions_total", role="shadow") == 95.0
    before = parse_exposition(
        EXPOSITION.replace(" 90.0", " 40.0")
        .replace(" 990.0", " 500.0")
        .replace("count 1000.0", "count 500.0")
    )
    got = scorer_deltas(before, after)
    assert got["shadow_outcomes"]["scored"] == 50.0
    assert got["shadow_outcomes"]["timeout"] == 0.0
    assert got["loop_lag"] == {"wakes": 500.0, "over_2ms": 10.0, "max_ms": 12.5}
    assert "loop_lag" not in scorer_deltas({}, {})  # a scorer without the probe


SPLIT = """shadowline_event_loop_lag_seconds_bucket{le="0.002"} 900.0
shadowline_event_loop_lag_seconds_count 1000.0
shadowline_event_loop_lag_max_seconds 0.02
shadowline_event_loop_hold_seconds_bucket{le="0.002"} 950.0
shadowline_event_loop_hold_seconds_count 1000.0
shadowline_event_loop_hold_max_seconds 0.015
shadowline_event_loop_blocked_seconds_bucket{le="0.002"} 997.0
shadowline_event_loop_blocked_seconds_count 1000.0
shadowline_event_loop_blocked_max_seconds 0.004
"""


def test_the_holds_and_their_blocked_part_are_read_and_reported() -> None:
    # 50 holds over 2 ms, 3 of them blocked by other threads over 2 ms: the looplag target
    # still counts the 50, and its note says how many the other threads caused.
    loop_lag = scorer_deltas({}, parse_exposition(SPLIT))["loop_lag"]
    assert loop_lag["holds_over_2ms"] == 50.0
    assert loop_lag["blocked_over_2ms"] == 3.0
    assert loop_lag["blocked_max_ms"] == 4.0
    rep = {k: {"scorer": {"loop_lag": loop_lag}} for k in ("change", "promotions")}
    [target] = [t for t in count_targets({"reps": [rep]}, ran=True) if t["key"] == "looplag"]
    assert target["per_rep"] == [100.0]
    assert "6 blocked by the scorer's other threads over 2 ms (largest 4.0 ms)" in target["note"]


CHILD = """
import os, subprocess, sys, threading, time
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
print("ready", flush=True)
sys.stdin.readline()  # then start a grandchild that widens its own mask, as a thread pool may
code = "import os, time; os.sched_setaffinity(0, set(range(NCPU))); time.sleep(60)"
grandchild = subprocess.Popen([sys.executable, "-c", code])
print(grandchild.pid, flush=True)
time.sleep(60)
"""


@pytest.fixture
def child() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD.replace("NCPU", str(os.cpu_count() or 1))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    yield proc
    for pid in reversed(tree_pids(proc.pid)):
        os.kill(pid, 9)
    proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()


@pytest.mark.skipif(pinned_plan() is None, reason="pinning needs two CPUs")
def test_pinning_moves_every_thread_of_the_tree_and_brings_back_a_child_that_moved(
    child: subprocess.Popen[str],
) -> None:
    plan = pinned_plan()
    assert plan is not None
    server_core = plan[0]
    assert pin_tree(child.pid, server_core) >= 2  # the main thread and the sleeping one
    assert {frozenset(os.sched_getaffinity(t)) for t in thread_ids(child.pid)} == {server_core}
    pinner = Pinner({child.pid: server_core}, every_s=0.05).start()
    try:
        assert child.stdin is not None
        assert child.stdout is not None
        child.stdin.write("go\n")
        child.stdin.flush()
        grandchild = int(child.stdout.readline())
        for _ in range(1000):  # the grandchild widens its mask; the pinner narrows it again
            if pinner.repins:
                break
            time.sleep(0.01)
        assert pinner.repins > 0
        assert grandchild in tree_pids(child.pid)
        assert {frozenset(os.sched_getaffinity(t)) for t in thread_ids(grandchild)} == {server_core}
    finally:
        pinner.stop()
