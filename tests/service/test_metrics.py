"""The request path's histogram observer and counter count exactly as prometheus_client's
``observe`` and ``inc``."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Histogram

from service.metrics import (
    LATENCY_BUCKETS,
    SCORE_BUCKETS,
    ServiceMetrics,
    incrementer,
    observer,
)


def samples(family: Histogram, version: str, suffix: str) -> dict[str, float]:
    """The ``suffix`` samples (``_bucket``, ``_sum``) of one production version, by bound."""
    return {
        sample.labels.get("le", ""): sample.value
        for metric in family.collect()
        for sample in metric.samples
        if sample.name.endswith(suffix) and sample.labels.get("version") == version
    }


def test_the_observer_fills_the_buckets_and_the_sum_as_observe_does() -> None:
    metrics = ServiceMetrics(CollectorRegistry())
    for family, bounds in (
        (metrics.scores, SCORE_BUCKETS),
        (metrics.inference_seconds, LATENCY_BUCKETS),
    ):
        # Each bound itself (a bucket counts values up to and including it), just above each,
        # below the first, far past the last, and infinity.
        values = [*bounds, *(bound * 1.0001 for bound in bounds), -1.0, 0.0, 1e9, math.inf]
        reference = family.labels("production", "a")
        observe = observer(family.labels("production", "b"))
        for value in values:
            reference.observe(value)
            observe(value)
        expected = samples(family, "a", "_bucket")
        assert len(expected) == len(bounds) + 1
        assert samples(family, "b", "_bucket") == expected
        assert samples(family, "b", "_sum") == samples(family, "a", "_sum")


def test_a_nan_is_counted_in_no_bucket_as_observe_counts_it() -> None:
    metrics = ServiceMetrics(CollectorRegistry())
    metrics.scores.labels("production", "a").observe(math.nan)
    observer(metrics.scores.labels("production", "b"))(math.nan)
    for version in ("a", "b"):
        assert set(samples(metrics.scores, version, "_bucket").values()) == {0.0}
        assert math.isnan(samples(metrics.scores, version, "_sum")[""])


def test_the_incrementer_counts_as_inc_does() -> None:
    metrics = ServiceMetrics(CollectorRegistry())
    reference = metrics.decisions.labels("production", "a", "block")
    inc = incrementer(metrics.decisions.labels("production", "b", "block"))
    for _ in range(5):
        reference.inc()
        inc()
    counted = {
        sample.labels["version"]: sample.value
        for metric in metrics.decisions.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    }
    assert counted == {"a": 5.0, "b": 5.0}


class _ElsewhereValue:
    """A value kept some other way (as prometheus_client's multiprocess mode keeps them)."""


def test_values_kept_elsewhere_take_prometheus_clients_own_locked_path() -> None:
    metrics = ServiceMetrics(CollectorRegistry())
    child = metrics.scores.labels("production", "a")
    child._sum = _ElsewhereValue()
    assert observer(child) == child.observe
    counter = metrics.decisions.labels("production", "a", "allow")
    counter._value = _ElsewhereValue()
    assert incrementer(counter) == counter.inc
