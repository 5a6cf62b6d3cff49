"""What a run measured: HDR latency histograms, counts, a per-second timeline; mergeable.

Latencies are recorded in microseconds in HDR histograms (1 us .. 60 s, 3 significant digits:
any percentile is exact to 0.1%).  Each generator process fills one :class:`Recorder`;
:meth:`Recorder.to_wire` / :meth:`Recorder.from_wire` carry it across processes (histograms
HDR-encoded) and :meth:`Recorder.merge` adds them up, so percentiles of a multi-process run are
the percentiles of all requests, not an average of per-process percentiles.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 60_000_000
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9))


def new_histogram(digits: int = 3) -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, digits)


def clamp_us(seconds: float) -> int:
    """Seconds to whole microseconds within the histogram's range."""
    return min(max(int(seconds * 1e6), LOWEST_US), HIGHEST_US)


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
        self.latency = new_histogram()  # from scheduled send time (open) / send time (closed)
        self.service = new_histogram()  # from the actual write to the socket
        self.lag = new_histogram()  # how late the generator sent each request
        # The first request on each connection opened during the run (from its socket write):
        # a pool that grows under load pays for the server accepting each new connection.
        self.first = new_histogram()
        # Every other request (from scheduled / send time, as ``latency``): the run on
        # connections the server had already accepted.
        self.settled = new_histogram()
        self.by_status: Counter[str] = Counter()
        self.by_kind: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.unexpected = 0  # a response whose status class is not the payload's expected one
        self.seconds: dict[int, Second] = {}
        self.cpu_s = 0.0  # CPU time the generator process(es) used during the run

    def _second(self, second: int) -> Second:
        sec = self.seconds.get(second)
        if sec is None:
            sec = self.seconds[second] = Second()
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
        us = clamp_us(latency_s)
        self.latency.record_value(us)
        self.service.record_value(clamp_us(service_s))
        self.by_status[str(status)] += 1
        self.by_kind[kind] += 1
        sec = self._second(second)
        sec.completed += 1
        sec.hist.record_value(us)
        if first:
            self.first.record_value(clamp_us(service_s))
        else:
            self.settled.record_value(us)
            sec.settled.record_value(us)
        if not ok:
            self.unexpected += 1
            sec.failed += 1

    def opened(self, second: int) -> None:
        """Record a connection opened during the run (in ``second``)."""
        self._second(second).opened += 1

    def send_lag(self, lag_s: float) -> None:
        """Record how far behind its schedule the generator sent a request."""
        self.lag.record_value(clamp_us(lag_s))

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
