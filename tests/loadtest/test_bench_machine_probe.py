"""The bench's machine probe: a real probe process per CPU, and what the report makes of it."""

from __future__ import annotations

import os
import signal
import time

from benchmarks.machine_probe import MachineProbe, stalls_between


def test_a_probe_that_cannot_run_for_a_while_reports_that_stall_on_its_cpu() -> None:
    cpu = min(os.sched_getaffinity(0))
    probe = MachineProbe({cpu})
    probe.start()
    try:
        time.sleep(1.0)  # spawned: the child imports and starts sleeping
        pid = probe.pids[cpu]
        os.kill(pid, signal.SIGSTOP)  # neither running nor waiting for a core: a stall
        stopped_at = time.time()
        time.sleep(0.08)
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.2)
    finally:
        stalls = probe.stop()
    assert probe.cpus == [cpu]
    long = [s for s in stalls if s["ms"] > 50]
    assert len(long) == 1, stalls
    assert long[0]["cpu"] == cpu
    assert 70 <= long[0]["ms"] < 1000
    assert stopped_at < long[0]["wall"] < stopped_at + 1.0  # stamped when it woke


def test_a_window_counts_the_stalls_over_2_ms_that_start_inside_it() -> None:
    stalls = [
        {"cpu": 0, "second": 0.9, "ms": 9.0},  # before the window
        {"cpu": 0, "second": 1.0, "ms": 2.5},
        {"cpu": 1, "second": 1.0, "ms": 6.0},
        {"cpu": 1, "second": 2.0, "ms": 2.0},  # not over 2 ms
        {"cpu": 0, "second": 3.5, "ms": 30.0},  # the window's end is outside it
    ]
    assert stalls_between(stalls, 1.0, 3.5) == {"stalls_over_2ms": 2, "stall_max_ms": 6.0}
    assert stalls_between(stalls, 4.0, 6.0) == {"stalls_over_2ms": 0, "stall_max_ms": 0.0}
