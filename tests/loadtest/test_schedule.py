"""The open-loop timetable: due times, per-process shares, bounds."""

from __future__ import annotations

import pytest

from loadtest.errors import LoadTestError
from loadtest.schedule import Schedule, plan_total, share


def test_plan_total_is_rate_times_duration_capped_by_max_requests() -> None:
    assert plan_total(100.0, 2.5, 1_000) == 250
    assert plan_total(100.0, 2.5, 99) == 99
    assert plan_total(3.0, 0.1, 10) == 0


@pytest.mark.parametrize(
    ("rate", "duration", "message"),
    [
        (0.0, 1.0, "rate must be a positive number of requests/s (got 0.0)"),
        (float("inf"), 1.0, "rate must be a positive number of requests/s (got inf)"),
        (10.0, -1.0, "duration must be a positive number of seconds (got -1.0)"),
    ],
)
def test_plan_total_refuses_unbounded_or_empty_runs(
    rate: float, duration: float, message: str
) -> None:
    with pytest.raises(LoadTestError) as info:
        plan_total(rate, duration, 10)
    assert str(info.value) == message


def test_shares_of_all_processes_add_up_to_the_total() -> None:
    for total in (0, 1, 7, 100, 101):
        for procs in (1, 2, 3, 8):
            assert sum(share(total, procs, k) for k in range(procs)) == total
    assert [share(7, 3, k) for k in range(3)] == [3, 2, 2]


def test_share_refuses_an_index_out_of_range() -> None:
    with pytest.raises(LoadTestError) as info:
        share(10, 2, 2)
    assert str(info.value) == "process index 2 out of range for 2 processes"


def test_one_process_is_due_every_interval() -> None:
    s = Schedule(rate=4.0, count=10)
    assert [s.due(i) for i in range(4)] == [0.0, 0.25, 0.5, 0.75]
    assert s.due_by(0.0) == 1
    assert s.due_by(0.24) == 1
    assert s.due_by(0.25) == 2
    assert s.due_by(1.0) == 5
    assert s.due_by(100.0) == 10  # never more than count


def test_processes_interleave_into_the_single_generator_timetable() -> None:
    procs, rate, total = 3, 30.0, 20
    times = sorted(
        Schedule(rate=rate, count=share(total, procs, k), procs=procs, index=k).due(i)
        for k in range(procs)
        for i in range(share(total, procs, k))
    )
    assert times == pytest.approx([g / rate for g in range(total)])


def test_a_later_process_has_nothing_due_before_its_first_slot() -> None:
    s = Schedule(rate=10.0, count=5, procs=2, index=1)
    assert s.due(0) == pytest.approx(0.1)
    assert s.due_by(0.05) == 0
    assert s.due_by(0.1) == 1
    assert s.due_by(0.29) == 1
    assert s.due_by(0.3) == 2
