"""Event-loop lag: how late the scorer's event loop wakes up, as Prometheus metrics.

Every request of a scorer process runs on one event loop, so anything that holds it (a model
load, a large JSON encode, a synchronous Redis call) delays every request in flight by as
much.  The probe is a task that sleeps ``interval`` again and again and records how much
longer than asked each sleep took: that oversleep is the time the loop was busy elsewhere.
Any hold longer than the interval overlaps some wake-up, so with a 1 ms interval every hold
above 1 ms is seen (uvloop's timers have millisecond resolution: a reading is up to ~1 ms too
high, never too low).

Exposed as ``shadowline_event_loop_lag_seconds`` (a histogram; its 0.002 bucket counts the
wakes within 2 ms) and ``shadowline_event_loop_lag_max_seconds`` (the largest lag since the
previous scrape of this process's metrics; reset by each scrape, so one scraper per process).

A late wake has two causes: work on the loop (or another thread of this process holding the
GIL), and the operating system running something else on the core (the loop's thread waiting
in the run queue).  Only the first is the scorer's doing.  On Linux the probe also reads the
loop thread's run-queue wait (``/proc/thread-self/schedstat``) and records the lag without it
as the **hold**: ``shadowline_event_loop_hold_seconds`` and its ``_max`` gauge.  On a shared
machine the lag counts preemption; the hold does not.

A hold has two kinds of cause: the loop's own work (its callbacks: requests, or anything run on
the loop) and another thread of this process holding the GIL (a model load, the sidecar's
hand-over) while the loop's thread sleeps waiting for it.  The same file also gives the loop
thread's CPU time, so each wake splits its period into time run, time queued for a core and
time **blocked** (neither: asleep, waiting for the GIL or in a blocking call).  Only up to one
interval of that can be the loop idling until its timer, so the part of the hold beyond it is
recorded as ``shadowline_event_loop_blocked_seconds`` (and its ``_max`` gauge): the loop held
up by other threads, not by its own callbacks.  It may read up to a timer tick (1 ms) high.

Off by default (``SHADOWLINE_LAG_PROBE``): a thousand wake-ups a second cost about 2% of a
core (measured with uvloop on the bench machine), and more on a virtual machine where each
timer wake-up is dear (7.2% of a core for an idle scorer's loop thread, against 0.2% without
the probe, on the 2-core bench VM on 2026-12-02).  The schedstat file is opened once, on the
loop's thread (the open file stays bound to the thread that opened it), and read with one
``pread`` a wake: 0.7 us, against 6.4 us to open, read and close it each time (measured on the
2-core bench machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.settings import ServiceSettings

LAG_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
SCHEDSTAT = Path("/proc/thread-self/schedstat")


def _wait_s(schedstat: bytes) -> float | None:
    """The run-queue wait (the second field, in ns) of a schedstat line, in seconds."""
    try:
        return int(schedstat.split()[1]) / 1e9
    except (IndexError, ValueError):
        return None


class RunQueueWait:
    """Seconds the thread that created it has waited in the run queue so far (Linux), read
    from a file kept open.

    ``/proc/thread-self`` is resolved when the file is opened, so every read, from whatever
    thread, reports the creator's wait.  Calls return None where there is no such file (not
    Linux) or after :meth:`close`.
    """

    def __init__(self) -> None:
        try:
            self._fd: int | None = os.open(SCHEDSTAT, os.O_RDONLY)
        except OSError:
            self._fd = None

    def __call__(self) -> float | None:
        line = self.line()
        return None if line is None else _wait_s(line)

    def times(self) -> tuple[float | None, float | None]:
        """The creator's run-queue wait and its time run on a core so far, in seconds, from one
        read (each None when unknown)."""
        line = self.line()
        if line is None:
            return None, None
        try:
            ran = int(line.split()[0]) / 1e9
        except (IndexError, ValueError):
            ran = None
        return _wait_s(line), ran

    def line(self) -> bytes | None:
        """The creator's schedstat line (run time, run-queue wait, time slices), or None."""
        fd = self._fd
        if fd is None:
            return None
        try:
            return os.pread(fd, 128, 0)
        except OSError:
            return None

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class _PeakCollector(Collector):
    """``shadowline_event_loop_lag_max_seconds``: the probe's peak, reset when collected."""

    def __init__(self, probe: LagProbe) -> None:
        self._probe = probe

    def collect(self) -> Iterator[Metric]:
        lag, hold, blocked = self._probe.take_all_peaks()
        yield GaugeMetricFamily(
            "shadowline_event_loop_lag_max_seconds",
            "Largest event-loop lag seen since the previous scrape (reset by each scrape).",
            value=lag,
        )
        yield GaugeMetricFamily(
            "shadowline_event_loop_hold_max_seconds",
            "Largest event-loop lag without the loop thread's run-queue wait since the previous "
            "scrape (reset by each scrape).",
            value=hold,
        )
        yield GaugeMetricFamily(
            "shadowline_event_loop_blocked_max_seconds",
            "Largest part of a hold the loop's thread spent blocked (waiting for another "
            "thread of this process) since the previous scrape (reset by each scrape).",
            value=blocked,
        )


class LagProbe:
    """Measures the running loop's oversleep every ``interval_s`` while :meth:`run` runs."""

    def __init__(
        self,
        registry: CollectorRegistry,
        interval_s: float = 0.001,
        clock: Callable[[], float] = time.perf_counter,
        waited: Callable[[], float | None] | None = None,
        ran: Callable[[], float | None] | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"the lag probe's interval must be positive, not {interval_s}")
        self.interval_s = interval_s
        self._clock = clock
        self._waited = waited
        self._ran = ran
        self._peak = 0.0
        self._hold_peak = 0.0
        self._blocked_peak = 0.0
        # /metrics renders in a thread (service.app): a peak must not land between its
        # reading and its reset.
        self._peaks_lock = threading.Lock()
        self._registry = registry
        self.histogram = Histogram(
            "shadowline_event_loop_lag_seconds",
            "How much later than asked the event loop woke the lag probe (time it spent on "
            "other work).",
            buckets=LAG_BUCKETS,
            registry=None,
        )
        self.holds = Histogram(
            "shadowline_event_loop_hold_seconds",
            "The lag without the time the loop's thread waited for a core (Linux): how long "
            "work in this process held the loop.",
            buckets=LAG_BUCKETS,
            registry=None,
        )
        self.blocked = Histogram(
            "shadowline_event_loop_blocked_seconds",
            "The part of the hold the loop's thread spent blocked, not running (Linux): how "
            "long other threads of this process held the loop up.",
            buckets=LAG_BUCKETS,
            registry=None,
        )
        self._peak_collector = _PeakCollector(self)
        registry.register(self.histogram)
        registry.register(self.holds)
        registry.register(self.blocked)
        registry.register(self._peak_collector)

    def observe(
        self, lag_s: float, queued_s: float | None = None, blocked_s: float | None = None
    ) -> None:
        """Record one wake-up that came ``lag_s`` late, ``queued_s`` of it waiting for a core
        (None: unknown, no hold recorded), after a period in which the loop's thread was
        ``blocked_s`` neither running nor queued (None: unknown); negative readings count
        as 0."""
        lag_s = max(0.0, lag_s)
        self.histogram.observe(lag_s)
        hold_s = held_up_s = 0.0
        if queued_s is not None:
            hold_s = max(0.0, lag_s - queued_s)
            self.holds.observe(hold_s)
            if blocked_s is not None:
                # Up to one interval of the blocked time can be the loop idling until its timer.
                held_up_s = min(hold_s, max(0.0, blocked_s - self.interval_s))
                self.blocked.observe(held_up_s)
        with self._peaks_lock:
            self._peak = max(self._peak, lag_s)
            self._hold_peak = max(self._hold_peak, hold_s)
            self._blocked_peak = max(self._blocked_peak, held_up_s)

    def take_peak(self) -> float:
        """The largest lag since the previous call, and start a new period."""
        return self.take_peaks()[0]

    def take_peaks(self) -> tuple[float, float]:
        """The largest lag and the largest hold since the previous call; a new period."""
        lag, hold, _ = self.take_all_peaks()
        return lag, hold

    def take_all_peaks(self) -> tuple[float, float, float]:
        """The largest lag, hold and blocked part since the previous call; a new period."""
        with self._peaks_lock:
            peaks = (self._peak, self._hold_peak, self._blocked_peak)
            self._peak = self._hold_peak = self._blocked_peak = 0.0
        return peaks

    async def run(self) -> None:
        """Measure until cancelled.  The wake-ups are plain timer callbacks, not a coroutine
        sleeping: the same reading at about half the CPU (no task step per wake).  Without a
        ``waited`` of its own, the probe reads the run-queue wait of the thread it runs on
        (:class:`RunQueueWait`, opened here, on the loop's thread)."""
        if self._waited is None:
            reader = RunQueueWait()
            try:
                await self._measure(reader.times)
            finally:
                reader.close()
        else:
            waited, ran = self._waited, self._ran
            await self._measure(lambda: (waited(), None if ran is None else ran()))

    async def _measure(self, read: Callable[[], tuple[float | None, float | None]]) -> None:
        """Wake every interval; ``read`` gives the loop thread's run-queue wait and run time
        so far (each None when unknown)."""
        loop = asyncio.get_running_loop()
        stopped: asyncio.Future[None] = loop.create_future()
        handle: asyncio.TimerHandle | None = None

        def wake(asked_at: float, waited_before: float | None, ran_before: float | None) -> None:
            nonlocal handle
            try:
                waited, ran = read()
                now = self._clock()
                queued = blocked = None
                if waited is not None and waited_before is not None:
                    queued = waited - waited_before
                    if ran is not None and ran_before is not None:
                        blocked = (now - asked_at) - (ran - ran_before) - queued
                self.observe(now - asked_at - self.interval_s, queued, blocked)
                # This wake's readings start the next interval: one schedstat read a wake.
                handle = loop.call_later(self.interval_s, wake, now, waited, ran)
            except Exception as exc:  # a broken clock ends the probe, not the loop
                if not stopped.done():
                    stopped.set_exception(exc)

        handle = loop.call_later(self.interval_s, wake, self._clock(), *read())
        try:
            await stopped
        finally:
            handle.cancel()

    def close(self) -> None:
        """Take the metrics off the registry (a new probe may register them again)."""
        for collector in (self.histogram, self.holds, self.blocked, self._peak_collector):
            with contextlib.suppress(KeyError):
                self._registry.unregister(collector)


@contextlib.asynccontextmanager
async def lag_probe(
    settings: ServiceSettings, registry: CollectorRegistry
) -> AsyncIterator[LagProbe | None]:
    """Run a :class:`LagProbe` on the current loop for the duration of the block when
    ``settings.lag_probe`` is on (the scorer's lifespan wraps its serving in this); yields
    the probe, or None when it is off."""
    if not settings.lag_probe:
        yield None
        return
    probe = LagProbe(registry, settings.lag_probe_interval_ms / 1000)
    task = asyncio.create_task(probe.run(), name="lag-probe")
    try:
        yield probe
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        probe.close()
