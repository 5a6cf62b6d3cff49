"""Prometheus metrics of the topic archiver, on an injected ``CollectorRegistry``.

Served on ``SHADOWLINE_ARCHIVE_METRICS_PORT`` by ``shadowline archive`` (the archiver is its
own process, so its series carry its own ``job`` in Prometheus).
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge

OUTCOMES = ("archived", "refused")


class ArchiveMetrics:
    """Records archived and refused per topic, lag per topic, the last commit's time."""

    def __init__(self, registry: CollectorRegistry, topics: tuple[str, ...] = ()) -> None:
        self.registry = registry
        self.records = Counter(
            "shadowline_archive_records_total",
            "Records the archiver wrote to Parquet (archived) or to a dead-letter file "
            "(refused: the record does not decode).",
            ["topic", "outcome"],
            registry=registry,
        )
        self.lag = Gauge(
            "shadowline_archive_lag_records",
            "Records on the topic's assigned partitions not yet read by the archiver.",
            ["topic"],
            registry=registry,
        )
        self.last_commit = Gauge(
            "shadowline_archive_last_commit_timestamp_seconds",
            "Unix time the archiver last committed offsets after writing a batch.",
            registry=registry,
        )
        self.last_poll = Gauge(
            "shadowline_archive_last_poll_timestamp_seconds",
            "Unix time the archiver's loop last polled the broker (its heartbeat: /healthz "
            "fails when it is older than the stall limit).",
            registry=registry,
        )
        self.polled_at: float | None = None  # time.monotonic() of the last poll
        for topic in topics:  # every series exists from the start (at 0)
            for outcome in OUTCOMES:
                self.records.labels(topic=topic, outcome=outcome)
            self.lag.labels(topic=topic)

    def polled(self) -> None:
        """The loop has polled once more (called every iteration)."""
        self.polled_at = time.monotonic()
        self.last_poll.set(time.time())

    def value(self, topic: str, outcome: str) -> float:
        """The current count of ``outcome`` records of ``topic`` (for tests and reports)."""
        sample = self.registry.get_sample_value(
            "shadowline_archive_records_total", {"topic": topic, "outcome": outcome}
        )
        return 0.0 if sample is None else sample
