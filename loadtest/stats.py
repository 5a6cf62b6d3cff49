"""What a run measured: HDR latency histograms, counts, a per-second timeline; mergeable.

Latencies are recorded in microseconds in HDR histograms (1 us .. 60 s, 3 significant digits:
any percentile is exact to 0.1%).  Each generator process fills one :class:`Recorder`;
:meth:`Recorder.to_wire` / :meth:`Recorder.from_wire` carry it across processes (histograms
HDR-encoded) and :meth:`Recorder.merge` adds them up, so percentiles of a multi-process run are
the percentiles of all requests, not an average of per-process percentiles.

A response is recorded as four plain numbers appended to arrays, a send lag as one; they are
added to the histograms in a few numpy operations (:func:`record_all`) when the recorder is
read, after the run.  ``HdrHistogram.record_value`` is Python, about 1.3 us a call, and each
request went into six histograms: recording a response and its send lag took 11-16 us against
1.3 now (timeit), and the generator's CPU at 3,840 req/s open loop against a hello-world server
fell from 134-140 to 99-111 us a request (three runs each, a 2-core VM): CPU it no longer
takes from the server it measures when both share two cores.
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 60_000_000
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9))
# Responses held as raw numbers (33 bytes each) before they go into the histograms.  A fold
# holds the generator's loop (about 50 ms for 80,000 responses on a 2-core VM), so it happens
# when the run is read, after it; only a run past this many responses in one process pauses
# for one mid-run.
FOLD_EVERY = 2_000_000


def new_histogram(digits: int = 3) -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, digits)


def clamp_us(seconds: float) -> int:
    """Seconds to whole microseconds within the histogram's range."""
    return min(max(int(seconds * 1e6), LOWEST_US), HIGHEST_US)


def clamp_all_us(seconds: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """:func:`clamp_us` of each value of ``seconds``."""
    return np.clip(seconds * 1e6, LOWEST_US, HIGHEST_US).astype(np.int64)


def record_all(hist: HdrHistogram, values: npt.NDArray[np.int64]) -> None:
    """Add ``values`` (within the histogram's trackable range, as :func:`clamp_all_us` gives
    them) to ``hist``: what ``hist.record_value`` does for each, in a few array operations.

    It computes hdrh's bucket index (``_counts_index_for``: the value's bit length gives its
    bucket, its top bits the sub-bucket) and updates the four fields ``record_value`` updates.
    ``tests/loadtest/test_stats.py`` checks the result against ``record_value``, value for
    value, so a release of hdrh that lays out its counts otherwise fails there.
    """
    if values.size == 0:
        return
    # Bit length of each value: frexp's exponent, exact for integers below 2**53.
    bits = np.frexp((values | hist.sub_bucket_mask).astype(np.float64))[1].astype(np.int64)
    bucket = bits - hist.unit_magnitude - (hist.sub_bucket_half_count_magnitude + 1)
    sub_bucket = values >> (bucket + hist.unit_magnitude)
    index = ((bucket + 1) << hist.sub_bucket_half_count_magnitude) + sub_bucket
    index -= hist.sub_bucket_half_count
    slots, times = np.unique(index, return_counts=True)
    counts = np.ctypeslib.as_array(hist.counts)
    counts[slots] += times.astype(counts.dtype)
    hist.total_count += int(values.size)
    hist.min_value = min(hist.min_value, int(values.min()))
    hist.max_value = max(hist.max_value, int(values.max()))


def summarize(hist: HdrHistogram) -> dict[str, float]:
    """Percentiles, max and mean in milliseconds (all 0.0 for an empty histogram)."""
    if hist.get_total_count() == 0:
        return {**{name: 0.0 for name, _ in PERCENTILES}, "max": 0.0, "mean": 0.0}
    out = {name: hist.get_value_at_percentile(q) / 1000 for name, q in PERCENTILES}
    out["max"] = hist.get_max_value() / 1000
    out["mean"] = round(hist.get_mean_value() / 1000, 3)
    return out


@dataclass
class Second:
    """One second of the run, by scheduled (open loop) or send (closed loop) time."""

    completed: int = 0
    failed: int = 0
    opened: int = 0  # connections the generator opened in this second, after the start
    hist: HdrHistogram = field(default_factory=lambda: new_histogram(2))
    # The same without the first request on each connection opened during the run: the
    # latency of requests on connections the server had already accepted.
    settled: HdrHistogram = field(default_factory=lambda: new_histogram(2))


class Recorder:
    """Counts and histograms of one run (or of several merged)."""

    def __init__(self) -> None:
        self._latency = new_histogram()  # from scheduled send time (open) / send time (closed)
        self._service = new_histogram()  # from the actual write to the socket
        self._lag = new_histogram()  # how late the generator sent each request
        # The first request on each connection opened during the run (from its socket write):
        # a pool that grows under load pays for the server accepting each new connection.
        self._first = new_histogram()
        # Every other request (from scheduled / send time, as ``latency``): the run on
        # connections the server had already accepted.
        self._settled = new_histogram()
        self.by_status: Counter[str] = Counter()
        self.by_kind: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.unexpected = 0  # a response whose status class is not the payload's expected one
        self._seconds: dict[int, Second] = {}
        self.cpu_s = 0.0  # CPU time the generator process(es) used during the run
        # What is not in the histograms yet (``_fold``): per response its latency and service
        # time (seconds), its second and whether it was a fresh connection's first; send lags.
        self._held_latency = array("d")
        self._held_service = array("d")
        self._held_second = array("q")
        self._held_first = array("b")
        self._held_lag = array("d")

    # Read through these: each first adds what is held to the histograms.
    @property
    def latency(self) -> HdrHistogram:
        self._fold()
        return self._latency

    @property
    def service(self) -> HdrHistogram:
        self._fold()
        return self._service

    @property
    def lag(self) -> HdrHistogram:
        self._fold()
        return self._lag

    @property
    def first(self) -> HdrHistogram:
        self._fold()
        return self._first

    @property
    def settled(self) -> HdrHistogram:
        self._fold()
        return self._settled

    @property
    def seconds(self) -> dict[int, Second]:
        self._fold()
        return self._seconds

    def _second(self, second: int) -> Second:
        sec = self._seconds.get(second)
        if sec is None:
            sec = self._seconds[second] = Second()
        return sec

    def response(
        self,
        latency_s: float,
        service_s: float,
        status: int,
        kind: str,
        ok: bool,
        second: int,
        *,
        first: bool = False,
    ) -> None:
        """Record a completed request; ``ok`` says whether its status was the expected one,
        ``first`` whether it was the first on a connection opened during the run."""
        self._held_latency.append(latency_s)
        self._held_service.append(service_s)
        self._held_second.append(second)
        self._held_first.append(first)
        self.by_status[str(status)] += 1
        self.by_kind[kind] += 1
        if not ok:
            self.unexpected += 1
            self._second(second).failed += 1
        if len(self._held_latency) >= FOLD_EVERY:
            self._fold()

    def opened(self, second: int) -> None:
        """Record a connection opened during the run (in ``second``)."""
        self._second(second).opened += 1

    def send_lag(self, lag_s: float) -> None:
        """Record how far behind its schedule the generator sent a request."""
        self._held_lag.append(lag_s)
        if len(self._held_lag) >= FOLD_EVERY:
            self._fold()

    def _fold(self) -> None:
        """Add the held responses and send lags to the histograms (and each second's count)."""
        if self._held_lag:
            lags, self._held_lag = self._held_lag, array("d")
            record_all(self._lag, clamp_all_us(np.frombuffer(lags, dtype=np.float64)))
        if not self._held_latency:
            return
        held = (self._held_latency, self._held_service, self._held_second, self._held_first)
        self._held_latency, self._held_service = array("d"), array("d")
        self._held_second, self._held_first = array("q"), array("b")
        latency = clamp_all_us(np.frombuffer(held[0], dtype=np.float64))
        service = clamp_all_us(np.frombuffer(held[1], dtype=np.float64))
        seconds = np.frombuffer(held[2], dtype=np.int64)
        first = np.frombuffer(held[3], dtype=np.int8).astype(bool)
        record_all(self._latency, latency)
        record_all(self._service, service)
        record_all(self._first, service[first])
        record_all(self._settled, latency[~first])
        order = np.argsort(seconds, kind="stable")
        seconds, latency, first = seconds[order], latency[order], first[order]
        starts = np.flatnonzero(np.diff(seconds)) + 1
        for lo, hi in zip([0, *starts.tolist()], [*starts.tolist(), seconds.size], strict=True):
            sec = self._second(int(seconds[lo]))
            sec.completed += hi - lo
            record_all(sec.hist, latency[lo:hi])
            record_all(sec.settled, latency[lo:hi][~first[lo:hi]])

    def error(self, reason: str, second: int) -> None:
        """Record a request that got no response (connect failure, timeout, closed)."""
        self.errors[reason] += 1
        self._second(second).failed += 1

    @property
    def completed(self) -> int:
        return int(self.latency.get_total_count())

    @property
    def opened_total(self) -> int:
        """Connections opened during the run."""
        return sum(sec.opened for sec in self.seconds.values())

    @property
    def failed(self) -> int:
        """Requests that got no response or not the expected status class."""
        return self.unexpected + sum(self.errors.values())

    def to_wire(self) -> dict[str, Any]:
        """A picklable/JSON-able form with HDR-encoded histograms."""
        return {
            "latency": self.latency.encode(),
            "service": self.service.encode(),
            "lag": self.lag.encode(),
            "first": self.first.encode(),
            "settled": self.settled.encode(),
            "by_status": dict(self.by_status),
            "by_kind": dict(self.by_kind),
            "errors": dict(self.errors),
            "unexpected": self.unexpected,
            "cpu_s": self.cpu_s,
            "seconds": {
                s: (v.completed, v.failed, v.opened, v.hist.encode(), v.settled.encode())
                for s, v in self.seconds.items()
            },
        }

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> Recorder:
        rec = cls()
        rec.merge_wire(wire)
        return rec

    def merge_wire(self, wire: dict[str, Any]) -> None:
        """Add another recorder's :meth:`to_wire` form to this one."""
        for name in ("latency", "service", "lag", "first", "settled"):
            getattr(self, name).add(HdrHistogram.decode(wire[name]))
        self.by_status.update(wire["by_status"])
        self.by_kind.update(wire["by_kind"])
        self.errors.update(wire["errors"])
        self.unexpected += wire["unexpected"]
        self.cpu_s += wire["cpu_s"]
        for s, (completed, failed, opened, encoded, settled) in wire["seconds"].items():
            sec = self._second(int(s))
            sec.completed += completed
            sec.failed += failed
            sec.opened += opened
            sec.hist.add(HdrHistogram.decode(encoded))
            sec.settled.add(HdrHistogram.decode(settled))

    def merge(self, other: Recorder) -> None:
        """Add ``other``'s measurements to this one."""
        self.merge_wire(other.to_wire())

    def timeline(self) -> list[dict[str, float]]:
        """Per second: completed, failed, connections opened, p50/p99/max latency in ms, and
        the p99 without the first requests on connections opened during the run (missing
        seconds = 0)."""
        if not self.seconds:
            return []
        out = []
        for s in range(min(self.seconds), max(self.seconds) + 1):
            sec = self.seconds.get(s, Second())
            hist = summarize(sec.hist)
            out.append(
                {
                    "second": s,
                    "completed": sec.completed,
                    "failed": sec.failed,
                    "opened": sec.opened,
                    "p50_ms": hist["p50"],
                    "p99_ms": hist["p99"],
                    "max_ms": hist["max"],
                    "settled_p99_ms": summarize(sec.settled)["p99"],
                }
            )
        return out
