"""The sidecar's tally, added to the scorer's metrics: the same exposition as observing here."""

from __future__ import annotations

import random

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from service.metrics import LATENCY_BUCKETS, SCORE_BUCKETS, ServiceMetrics, add_to_histogram
from service.tally import Tally, apply_tally, bucket_counts


def samples(metrics: ServiceMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample but the created-at timestamps (they differ by construction)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_bucket_counts_follow_prometheus_le_buckets() -> None:
    # A value on a bound belongs to that bound's bucket (le), as in Histogram.observe.
    assert bucket_counts(np.array([0.1, 0.5]), [0.1, 0.2, 0.5, 0.7]) == [1, 2, 1]


def test_a_tally_applied_equals_observing_in_the_scorer() -> None:
    rng = random.Random(5)
    observed, applied = ServiceMetrics(CollectorRegistry()), ServiceMetrics(CollectorRegistry())
    tally, before = Tally(), Tally()
    for _ in range(3):  # three snapshots: only what grew in each is added
        for version in ("v2", "v3"):
            scores = [rng.random() for _ in range(50)]
            seconds = rng.choice([0.00005, 0.0003, 0.004, 3.0])
            decisions = {"allow": 40, "block": 10}
            tally.shadow_scored(version, seconds, scores, decisions)
            for score in scores:
                observed.scores.labels("shadow", version).observe(score)
            observed.inference_seconds.labels("shadow", version).observe(seconds)
            for decision, n in decisions.items():
                observed.decisions.labels("shadow", version, decision).inc(n)
        tally.shadow_error("v3", "timeout", 7)
        observed.shadow_errors.labels("v3", "timeout").inc(7)
        tally.record_failed("lost")
        observed.records_failed.labels("lost").inc()
        tally.records += 100
        tally.sent += 90
        tally.failed += 2
        observed.records.inc(100)
        observed.kafka_sent.inc(90)
        observed.kafka_failed.inc(2)
        snapshot = tally.snapshot()
        apply_tally(applied, before, snapshot)
        before = snapshot
    expected = samples(observed)
    assert any(name == "shadowline_score_bucket" for name, _ in expected)
    assert samples(applied) == pytest.approx(expected, rel=1e-12)  # sums: addition order


def test_add_to_histogram_refuses_the_wrong_number_of_buckets() -> None:
    metrics = ServiceMetrics(CollectorRegistry())
    child = metrics.scores.labels("shadow", "v1")
    expected = f"{len(LATENCY_BUCKETS)} bucket counts for {len(SCORE_BUCKETS) + 1} buckets"
    with pytest.raises(ValueError, match=expected):
        add_to_histogram(child, [1] * len(LATENCY_BUCKETS), 1.0)
