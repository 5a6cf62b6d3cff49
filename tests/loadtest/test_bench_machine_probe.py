"""The bench's machine probe: a real probe process per CPU, and what the report makes of it."""

from __future__ import annotations

import math
import os
import signal
import time

import pytest

from benchmarks.machine_probe import MachineProbe, ProbeError, stalls_between


def test_a_probe_that_cannot_run_for_a_while_reports_that_stall_on_its_cpu() -> None:
    cpu = min(os.sched_getaffinity(0))
    probe = MachineProbe({cpu})
    probe.start()  # returns once the probe is pinned and probing
    try:
        time.sleep(0.2)
        pid = probe.pids[cpu]
        os.kill(pid, signal.SIGSTOP)  # neither running nor waiting for a core: a stall
        stopped_at = time.time()
        time.sleep(0.08)
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.2)
    finally:
        stalls = probe.stop()
    assert (probe.cpus, probe.reported, probe.complete) == ([cpu], [cpu], True)
    long = [s for s in stalls if s["ms"] > 50]
    assert len(long) == 1, stalls
    assert long[0]["cpu"] == cpu
    assert 70 <= long[0]["ms"] < 1000
    # Stamped when the stall began (the probe's last sleep), not when it woke.
    assert abs(long[0]["wall"] - stopped_at) < 0.05


def test_a_probe_that_cannot_start_is_an_error_naming_its_cpu_and_nothing_is_left_running() -> None:
    first = min(os.sched_getaffinity(0))
    cpus = {first, 4096}  # no such CPU: sched_setaffinity fails
    probe = MachineProbe(cpus)
    with pytest.raises(ProbeError, match="the probe on CPU 4096 did not start: OSError"):
        probe.start()
    assert len(probe.pids) == 2
    assert (probe.reported, probe.complete) == ([first], False)  # the other was stopped
    assert probe.stop() is probe.stalls  # stopping again changes nothing
    for pid in probe.pids.values():  # both are gone (and reaped)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_window_is_unknown_when_a_probe_did_not_report() -> None:
    stalls = [{"cpu": 0, "second": 1.0, "ms": 5.0}]
    got = stalls_between(stalls, 0.0, 2.0, complete=False)
    assert math.isnan(got["stalls_over_2ms"])
    assert math.isnan(got["stalls_over_1ms"])
    assert math.isnan(got["stall_max_ms"])


def test_a_window_counts_the_stalls_over_2_ms_that_began_inside_it() -> None:
    stalls = [
        {"cpu": 0, "second": 0.9, "ms": 9.0},  # before the window
        {"cpu": 0, "second": 1.0, "ms": 2.5},
        {"cpu": 1, "second": 1.0, "ms": 6.0},
        {"cpu": 1, "second": 2.0, "ms": 2.0},  # not over 2 ms
        {"cpu": 0, "second": 3.5, "ms": 30.0},  # the window's end is outside it
    ]
    assert stalls_between(stalls, 1.0, 3.5) == {
        "stalls_over_2ms": 2,
        "stalls_over_1ms": 3,  # the 2.0 ms one too
        "stall_max_ms": 6.0,
    }
    assert stalls_between(stalls, 4.0, 6.0) == {
        "stalls_over_2ms": 0,
        "stalls_over_1ms": 0,
        "stall_max_ms": 0.0,
    }
