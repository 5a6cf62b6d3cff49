"""The event-loop lag probe: what it records, its metrics, and that the scorer serves them
when SHADOWLINE_LAG_PROBE is on (and not when it is off)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from registry import ModelRegistry
from service.app import GIL_SWITCH_INTERVAL_S, create_app
from service.lagprobe import SCHEDSTAT, LagProbe, RunQueueWait, lag_probe
from service.settings import ServiceSettings
from tests.service.server import serving


class _Exhausted(Exception):
    """The scripted clock has no reading left: ends the probe's loop."""


def _clock(readings: list[float]) -> Callable[[], float]:
    values: Iterator[float] = iter(readings)

    def read() -> float:
        for value in values:
            return value
        raise _Exhausted

    return read


def test_the_probe_records_each_oversleep_and_its_peak_until_scraped() -> None:
    registry = CollectorRegistry()
    probe = LagProbe(registry, interval_s=0.001)
    for lag in (0.0004, 0.0015, 0.030, -0.0001):
        probe.observe(lag)
    text = generate_latest(registry).decode()
    assert 'shadowline_event_loop_lag_seconds_bucket{le="0.002"} 3.0' in text
    assert "shadowline_event_loop_lag_seconds_count 4.0" in text
    assert "shadowline_event_loop_lag_max_seconds 0.03" in text
    # The peak is "since the previous scrape": the scrape above started a new period.
    assert "shadowline_event_loop_lag_max_seconds 0.0" in generate_latest(registry).decode()


def test_the_probe_measures_the_time_beyond_its_sleep() -> None:
    registry = CollectorRegistry()
    # Each wake reads the clock once, the start of the next sleep: 1 ms asked, 1 ms taken,
    # then 6 ms taken.
    probe = LagProbe(registry, 0.001, clock=_clock([0.0, 0.001, 0.007]))
    with pytest.raises(_Exhausted):  # the third sleep finds no reading left
        asyncio.run(probe.run())
    assert registry.get_sample_value("shadowline_event_loop_lag_seconds_count") == 2.0
    assert (
        registry.get_sample_value("shadowline_event_loop_lag_seconds_bucket", {"le": "0.002"})
        == 1.0
    )
    assert probe.take_peak() == pytest.approx(0.005)


def test_an_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="the lag probe's interval must be positive, not 0"):
        LagProbe(CollectorRegistry(), interval_s=0)


def test_the_context_runs_the_probe_only_when_enabled_and_unregisters_it() -> None:
    registry = CollectorRegistry()

    async def inside(enabled: bool) -> bool:
        async with lag_probe(ServiceSettings(lag_probe=enabled), registry) as probe:
            await asyncio.sleep(0.01)
            return probe is not None

    assert asyncio.run(inside(True)) is True
    assert registry.get_sample_value("shadowline_event_loop_lag_seconds_count") is None
    assert asyncio.run(inside(False)) is False
    assert asyncio.run(inside(True)) is True  # registering again after the first one closed


@pytest.mark.redis
@pytest.mark.kafka
@pytest.mark.parametrize("enabled", [True, False])
def test_the_scorer_serves_the_lag_metrics_when_the_probe_is_on(
    registry: ModelRegistry, make_settings: Callable[..., ServiceSettings], enabled: bool
) -> None:
    app = create_app(make_settings(lag_probe=enabled), registry)
    with serving(app) as client:
        metrics = client.get("/metrics").text
    assert ("shadowline_event_loop_lag_seconds_bucket" in metrics) is enabled
    assert ("shadowline_event_loop_lag_max_seconds" in metrics) is enabled


def test_the_hold_leaves_out_the_time_the_loop_waited_for_a_core() -> None:
    registry = CollectorRegistry()
    # 6 ms late, 5 ms of it in the run queue: the loop was held 1 ms; then 3 ms late, not
    # queued at all: held 3 ms.
    probe = LagProbe(
        registry, 0.001, clock=_clock([0.0, 0.007, 0.011]), waited=_clock([0.0, 0.005, 0.005])
    )
    with pytest.raises(_Exhausted):
        asyncio.run(probe.run())
    assert registry.get_sample_value("shadowline_event_loop_hold_seconds_count") == 2.0
    held_within_2ms = registry.get_sample_value(
        "shadowline_event_loop_hold_seconds_bucket", {"le": "0.002"}
    )
    assert held_within_2ms == 1.0
    lag, hold = probe.take_peaks()
    assert lag == pytest.approx(0.006)
    assert hold == pytest.approx(0.003)


def test_the_blocked_part_of_a_hold_is_what_the_loop_thread_neither_ran_nor_queued() -> None:
    registry = CollectorRegistry()
    # A 7 ms period (6 ms late) with 1 ms run and nothing queued: 6 ms blocked, of which one
    # interval may be idling until the timer, so 5 ms held up by other threads.  Then a 4 ms
    # period (3 ms late) with 2.5 ms run: 1.5 ms blocked, 0.5 ms of it held up; the rest of
    # that hold is the loop's own work.
    probe = LagProbe(
        registry,
        0.001,
        clock=_clock([0.0, 0.007, 0.011]),
        waited=_clock([0.0, 0.0, 0.0]),
        ran=_clock([0.0, 0.001, 0.0035]),
    )
    with pytest.raises(_Exhausted):
        asyncio.run(probe.run())
    assert registry.get_sample_value("shadowline_event_loop_blocked_seconds_count") == 2.0
    within_2ms = registry.get_sample_value(
        "shadowline_event_loop_blocked_seconds_bucket", {"le": "0.002"}
    )
    assert within_2ms == 1.0
    assert registry.get_sample_value("shadowline_event_loop_blocked_seconds_sum") == pytest.approx(
        0.0055
    )
    lag, hold, blocked = probe.take_all_peaks()
    assert (lag, hold, blocked) == pytest.approx((0.006, 0.006, 0.005))


def test_another_thread_holding_the_gil_reads_as_blocked_and_the_loops_own_work_does_not() -> None:
    """On the real loop: a C call that never lets go of the GIL (``sum`` over a range) in
    another thread holds the loop up as blocked time; the same call on the loop is a hold the
    loop ran itself."""
    if not SCHEDSTAT.exists():
        pytest.skip("no /proc/thread-self/schedstat here")

    def hog() -> None:
        sum(range(20_000_000))  # about 0.2 s in C, the GIL held throughout

    async def measure(on_the_loop: bool) -> tuple[float, float, float]:
        probe = LagProbe(CollectorRegistry(), 0.001)
        task = asyncio.create_task(probe.run())
        await asyncio.sleep(0.02)
        if on_the_loop:
            hog()
        else:
            await asyncio.to_thread(hog)
        await asyncio.sleep(0.02)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return probe.take_all_peaks()

    _, held, blocked = asyncio.run(measure(on_the_loop=False))
    assert blocked > 0.05, (held, blocked)
    _, held, blocked = asyncio.run(measure(on_the_loop=True))
    assert held > 0.05
    assert blocked < held / 4, (held, blocked)


def test_the_run_queue_wait_of_this_thread_is_read_on_linux() -> None:
    reader = RunQueueWait()
    first = reader()
    if first is None:
        pytest.skip("no /proc/thread-self/schedstat here")
    sum(range(200_000))  # some work; the wait can only grow
    second = reader()
    reader.close()
    assert second is not None
    assert second >= first


def test_the_kept_open_reader_reports_its_creators_line_from_any_thread() -> None:
    """The probe opens the file on the loop's thread and reads it on every wake: the reading
    must stay the loop thread's, not become the reader's."""
    if not SCHEDSTAT.exists():
        pytest.skip("no /proc/thread-self/schedstat here")
    reader = RunQueueWait()
    try:
        assert reader() is not None
        seen: list[bytes | None] = []
        other = threading.Thread(
            target=lambda: seen.extend([reader.line(), SCHEDSTAT.read_bytes()])
        )
        other.start()
        other.join()
        creators, others_own = seen
        assert creators is not None
        assert others_own is not None
        # Run time (the first field, ns): this thread has run the whole test session so far,
        # the new thread next to nothing.
        assert int(creators.split()[0]) > int(others_own.split()[0])
    finally:
        reader.close()
    assert reader() is None


class _Witness(Collector):
    """A collector that notes the thread each scrape collects it on."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    def collect(self) -> Iterator[Metric]:
        self.threads.append(threading.current_thread().name)
        return iter(())


@pytest.mark.redis
@pytest.mark.kafka
def test_the_scorer_renders_metrics_off_its_loop_and_takes_the_gil_back_within_1ms(
    registry: ModelRegistry, make_settings: Callable[..., ServiceSettings]
) -> None:
    metrics, witness = CollectorRegistry(), _Witness()
    metrics.register(witness)
    before = sys.getswitchinterval()
    app = create_app(make_settings(), registry, collector_registry=metrics)
    with serving(app) as client:  # the test server runs its loop on a thread named "uvicorn"
        assert client.get("/metrics").status_code == 200
        during = sys.getswitchinterval()
    assert witness.threads
    assert "uvicorn" not in witness.threads
    assert during == GIL_SWITCH_INTERVAL_S == 0.001
    assert sys.getswitchinterval() == before  # the lifespan puts it back
