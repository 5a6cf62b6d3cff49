"""The model-swap study's probe: it sees the interpreter lock held, from the work's first moment."""

from __future__ import annotations

import time

import pytest

from benchmarks.model_swap import table, worst_wake_ms


def test_a_call_keeping_the_lock_from_its_start_shows_as_a_late_wake_as_long_as_its_calls() -> None:
    # Each sum() runs for several milliseconds without letting go of the lock, and the very
    # first one starts with the work: the probe must not miss it.
    start = time.perf_counter()
    sum(range(2_000_000))
    one_call_ms = (time.perf_counter() - start) * 1e3
    hold_ms, took_ms = worst_wake_ms(lambda: sum(range(2_000_000)))
    assert hold_ms >= 0.5 * min(one_call_ms, took_ms), (hold_ms, took_ms, one_call_ms)


def test_work_that_lets_go_of_the_lock_is_not_counted_as_holding_it() -> None:
    hold_ms, took_ms = worst_wake_ms(lambda: time.sleep(0.3))
    assert took_ms >= 300
    # The probe wakes every 0.2 ms while the work sleeps: its worst lateness is the machine's,
    # far below the 300 ms a probe that waited for the work would show.
    assert hold_ms < 100


def test_work_that_fails_raises_its_error_instead_of_leaving_the_probe_waiting() -> None:
    def fail() -> None:
        raise RuntimeError("the model does not load")

    with pytest.raises(RuntimeError, match="the model does not load"):
        worst_wake_ms(fail)


def test_the_table_has_a_row_per_size_and_the_idle_row() -> None:
    rows = [
        {
            "trees": trees,
            "onnx_mib": 0.43 * trees / 200,
            "load_ms": 6.0,
            "load_hold_ms": 1.0,
            "load_hold_max_ms": 1.5,
            "release_ms": 0.3,
            "release_hold_ms": 0.4,
            "release_hold_max_ms": 0.6,
        }
        for trees in (200, 2000)
    ]
    lines = table(rows, idle=[0.1, 0.3]).splitlines()
    assert len(lines) == 2 + 2 + 1
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["200", "2,000", "idle, 0.2 s"]
    assert "| 0.20 (0.30) ms |" in lines[4]
