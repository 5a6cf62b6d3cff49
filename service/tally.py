"""Counts kept by the sidecar process and added to the scorer's Prometheus metrics.

The sidecar (:mod:`service.sidecar_loop`) runs the shadows, builds the score records and
produces them to Kafka in a process of its own, so the metrics of that work are counted there:
in a :class:`Tally` of plain cumulative numbers (histograms as per-bucket counts and a sum,
with the same buckets as :mod:`service.metrics`).  It sends a snapshot to the scorer about
twice a second; :func:`apply_tally` adds what grew since the previous snapshot to the
scorer's own metrics, which ``/metrics`` serves as one exposition.  Snapshots are cumulative,
so a skipped one loses nothing; a new sidecar starts from zero and the scorer starts its
deltas from zero with it.  A sidecar that dies takes the counts since its last snapshot with
it; the scorer then counts every transaction it handed over and saw no fate for as
``sidecar_gone`` (:meth:`service.sidecar.Sidecar._retire`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from service.metrics import LATENCY_BUCKETS, SCORE_BUCKETS, ServiceMetrics, add_to_histogram

_LATENCY_BOUNDS = np.array(LATENCY_BUCKETS)
_SCORE_BOUNDS = np.array(SCORE_BUCKETS)


def bucket_counts(bounds: npt.NDArray[np.float64], values: Iterable[float]) -> list[int]:
    """How many of ``values`` fall in each bucket ``(bounds[i-1], bounds[i]]``, plus +Inf."""
    index = np.searchsorted(bounds, np.fromiter(values, dtype=np.float64), side="left")
    return [int(n) for n in np.bincount(index, minlength=len(bounds) + 1)]


@dataclass
class Histo:
    """A histogram as per-bucket counts (the last is +Inf) and the sum of what was observed."""

    counts: list[int]
    total: float = 0.0

    def add(self, counts: list[int], total: float) -> None:
        self.counts = [a + b for a, b in zip(self.counts, counts, strict=True)]
        self.total += total


@dataclass
class Tally:
    """Cumulative counts of one sidecar (pickled to the scorer as a snapshot)."""

    # The Kafka producer and the spool (service.outbox): each record the sidecar builds ends
    # as sent, spooled or failed; spooled ones later as replayed (or still waiting).
    sent: int = 0  # acknowledged, sent straight
    failed: int = 0  # neither sent nor spooled
    spooled: int = 0
    replayed: int = 0  # acknowledged, sent from the spool
    spool_records: int = 0  # waiting in the spool now
    spool_bytes: int = 0
    spool_error: str = ""  # why there is no spool although one is configured
    restarts: int = 0
    connected: bool = False  # a producer exists and its deliveries succeed
    kafka_full: bool = False  # the producer holds its limit of unacknowledged records
    in_flight_bytes: int = 0
    # Records and shadows.
    records: int = 0
    records_failed: dict[str, int] = field(default_factory=dict)  # kind -> n
    shadow_errors: dict[tuple[str, str], int] = field(default_factory=dict)  # (version, kind)
    decisions: dict[tuple[str, str], int] = field(default_factory=dict)  # (version, decision)
    inference: dict[str, Histo] = field(default_factory=dict)  # version -> seconds per call
    scores: dict[str, Histo] = field(default_factory=dict)  # version -> shadow scores
    # Shadows this sidecar could not load: version -> (times, why the last time).  The scorer
    # reports each new one as a failed load and leaves that shadow out (service.loader).
    load_failures: dict[str, tuple[int, str]] = field(default_factory=dict)
    # The shadows it has loaded and scores with, in the set's order (/readyz: ``loaded``).
    shadows_loaded: tuple[str, ...] = ()

    def shadow_error(self, version: str, kind: str, n: int = 1) -> None:
        key = (version, kind)
        self.shadow_errors[key] = self.shadow_errors.get(key, 0) + n

    def load_failed(self, version: str, why: str) -> None:
        times, _ = self.load_failures.get(version, (0, ""))
        self.load_failures[version] = (times + 1, why)

    def record_failed(self, kind: str) -> None:
        self.records_failed[kind] = self.records_failed.get(kind, 0) + 1

    def shadow_scored(
        self, version: str, seconds: float, scores: list[float], decisions: dict[str, int]
    ) -> None:
        """One shadow call over a batch: its duration, its scores, their decisions."""
        inference = self.inference.setdefault(version, Histo([0] * (len(LATENCY_BUCKETS) + 1)))
        inference.add(bucket_counts(_LATENCY_BOUNDS, (seconds,)), seconds)
        histo = self.scores.setdefault(version, Histo([0] * (len(SCORE_BUCKETS) + 1)))
        histo.add(bucket_counts(_SCORE_BOUNDS, scores), float(sum(scores)))
        for decision, n in decisions.items():
            key = (version, decision)
            self.decisions[key] = self.decisions.get(key, 0) + n

    def snapshot(self) -> Tally:
        return copy.deepcopy(self)


def new_load_failures(old: Tally, new: Tally) -> list[tuple[str, str]]:
    """The shadows ``new`` failed to load since ``old`` (both of the same sidecar), with why."""
    return [
        (version, why)
        for version, (times, why) in new.load_failures.items()
        if times > old.load_failures.get(version, (0, ""))[0]
    ]


def apply_tally(metrics: ServiceMetrics, old: Tally, new: Tally) -> None:
    """Add to ``metrics`` what ``new`` counts beyond ``old`` (both of the same sidecar)."""
    for name, counter in (
        ("sent", metrics.kafka_sent),
        ("replayed", metrics.kafka_sent),
        ("failed", metrics.kafka_failed),
        ("restarts", metrics.kafka_restarts),
        ("records", metrics.records),
        ("spooled", metrics.spool_written),
        ("replayed", metrics.spool_replayed),
    ):
        grown = getattr(new, name) - getattr(old, name)
        if grown > 0:
            counter.inc(grown)
    metrics.spool_records.set(new.spool_records)
    metrics.spool_bytes.set(new.spool_bytes)
    metrics.kafka_connected.set(1.0 if new.connected else 0.0)
    for kind, n in new.records_failed.items():
        if n > old.records_failed.get(kind, 0):
            metrics.records_failed.labels(kind).inc(n - old.records_failed.get(kind, 0))
    for (version, kind), n in new.shadow_errors.items():
        if n > old.shadow_errors.get((version, kind), 0):
            grown = n - old.shadow_errors.get((version, kind), 0)
            metrics.shadow_errors.labels(version, kind).inc(grown)
    for (version, decision), n in new.decisions.items():
        if n > old.decisions.get((version, decision), 0):
            grown = n - old.decisions.get((version, decision), 0)
            metrics.decisions.labels("shadow", version, decision).inc(grown)
    histograms = (
        (metrics.inference_seconds, new.inference, old.inference),
        (metrics.scores, new.scores, old.scores),
    )
    for family, now, before in histograms:
        for version, histo in now.items():
            prior = before.get(version)
            if prior is None:
                counts, total = histo.counts, histo.total
            else:
                counts = [a - b for a, b in zip(histo.counts, prior.counts, strict=True)]
                total = histo.total - prior.total
            if any(counts):
                add_to_histogram(family.labels("shadow", version), counts, total)
