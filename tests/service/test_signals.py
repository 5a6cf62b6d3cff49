"""The production signals read from the scorer's metrics, and their statistics, checked by
simulation against known distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from service.metrics import LATENCY_BUCKETS, SCORE_BUCKETS, ServiceMetrics
from service.signals import Counts, Requests, psi, quantile, read
from service.tally import bucket_counts
from tests.service.helpers import counts


def test_read_takes_production_series_per_version_and_scoring_requests(
    metrics: ServiceMetrics,
) -> None:
    for score, decision in ((0.05, "allow"), (0.95, "block"), (0.55, "review"), (0.97, "block")):
        metrics.scores.labels("production", "v1").observe(score)
        metrics.decisions.labels("production", "v1", decision).inc()
    metrics.inference_seconds.labels("production", "v1").observe(0.002)
    metrics.scores.labels("shadow", "v9").observe(0.5)  # shadows are not production
    metrics.decisions.labels("shadow", "v9", "block").inc()
    metrics.decisions.labels("production", "v2", "allow").inc(3)
    for route, status, n in (
        ("/v1/score", "200", 5),
        ("/v1/score", "500", 1),
        ("/v1/score/batch", "503", 2),
        ("/v1/score", "422", 4),
        ("/admin/models", "500", 7),
    ):
        for _ in range(n):
            metrics.request_seconds.labels(route, status).observe(0.001)
    reading = read(metrics)
    assert reading.requests == Requests(total=12, failed=3)
    assert set(reading.versions) == {"v1", "v2"}
    v1 = reading.of("v1")
    assert (v1.scored, v1.blocked) == (4, 2)
    assert v1.scores == (1, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0)
    assert sum(v1.latency) == 1
    assert v1.latency[LATENCY_BUCKETS.index(0.0025)] == 1
    assert reading.of("v2") == Counts(scored=3)
    assert reading.of("nope") == Counts()


def test_read_agrees_with_what_a_scrape_of_the_same_metrics_shows(metrics: ServiceMetrics) -> None:
    """read() takes the series' values directly, not through collect(): both must agree on
    every version, production's and shadows' series mixed, over random traffic."""
    rng = np.random.default_rng(11)
    for _ in range(2000):
        role = ("production", "shadow")[int(rng.integers(2))]
        version = f"v{int(rng.integers(12))}"
        score = float(rng.random())
        metrics.scores.labels(role, version).observe(score)
        # Some beyond the largest bound: the +Inf bucket counts too.
        seconds = float(rng.exponential(0.003)) * (10_000 if rng.random() < 0.05 else 1)
        metrics.inference_seconds.labels(role, version).observe(seconds)
        decision = "block" if score > 0.9 else "review" if score > 0.6 else "allow"
        metrics.decisions.labels(role, version, decision).inc()
        route = ("/v1/score", "/v1/score/batch", "/v1/labels")[int(rng.integers(3))]
        status = ("200", "422", "500", "503")[int(rng.integers(4))]
        metrics.request_seconds.labels(route, status).observe(seconds)
    reading = read(metrics)

    def scraped(name: str, suffix: str) -> list[tuple[dict[str, str], float]]:
        return [
            (sample.labels, sample.value)
            for family in metrics.registry.collect()
            if family.name == name
            for sample in family.samples
            if sample.name == name + suffix
        ]

    production = set(reading.versions)
    for version in production:
        got = reading.of(version)
        cumulative = [
            value
            for labels, value in scraped("shadowline_score", "_bucket")
            if labels == {"role": "production", "version": version, "le": labels["le"]}
        ]
        assert list(np.cumsum(got.scores)) == cumulative
        latency = [
            value
            for labels, value in scraped("shadowline_inference_duration_seconds", "_bucket")
            if labels == {"role": "production", "version": version, "le": labels["le"]}
        ]
        assert list(np.cumsum(got.latency)) == latency
        assert latency[-1] > latency[-2]  # observations in +Inf only: the test can see them
        decided = {
            labels["decision"]: value
            for labels, value in scraped("shadowline_decisions", "_total")
            if (labels["role"], labels["version"]) == ("production", version)
        }
        assert (got.scored, got.blocked) == (sum(decided.values()), decided.get("block", 0))
    shadow_only = {
        labels["version"] for labels, _ in scraped("shadowline_decisions", "_total")
    } - production
    assert all(reading.of(v) == Counts() for v in shadow_only)
    counted = [
        (labels["status"], value)
        for labels, value in scraped("shadowline_request_duration_seconds", "_count")
        if labels["route"] != "/v1/labels"
    ]
    assert reading.requests == Requests(
        total=round(sum(v for _, v in counted)),
        failed=round(sum(v for status, v in counted if status.startswith("5"))),
    )


def test_counts_subtract_and_add() -> None:
    a, b = counts([0.1, 0.95, 0.95]), counts([0.95])
    assert (a - b).scored == 2
    assert (a - b).blocked == 1
    assert (a - b) + b == a
    assert (a - b).block_rate == 0.5
    assert Counts().block_rate == 0.0
    assert Requests(10, 1) - Requests(4, 1) == Requests(6, 0)
    assert Requests().error_ratio == 0.0


def test_psi_by_hand_and_refusal() -> None:
    assert psi([10, 10], [10, 10]) == 0.0
    # Shares (10.5/21, 10.5/21) against (2.5/21, 18.5/21).
    expected = (2.5 / 21 - 0.5) * math.log(2.5 / 10.5) + (18.5 / 21 - 0.5) * math.log(18.5 / 10.5)
    assert psi([10, 10], [2, 18]) == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"^2 expected bins against 3 actual bins$"):
        psi([1, 2], [1, 2, 3])


def test_psi_stays_low_for_the_same_distribution_and_high_for_a_shifted_one() -> None:
    """Simulation: scores of a model drawn from a known Beta distribution.  Two samples of
    the same model (200 new transactions against 2000 of the reference) stay under 0.25 in
    at least 99% of 400 draws; a model whose scores moved up (Beta(5, 2) against Beta(2, 5))
    is above 0.5 in every draw."""
    rng = np.random.default_rng(7)
    bounds = np.array(SCORE_BUCKETS)

    def sample(a: float, b: float, n: int) -> list[int]:
        return bucket_counts(bounds, rng.beta(a, b, n))

    same = [psi(sample(2, 5, 2000), sample(2, 5, 200)) for _ in range(400)]
    shifted = [psi(sample(2, 5, 2000), sample(5, 2, 200)) for _ in range(400)]
    assert np.mean(np.array(same) < 0.25) >= 0.99
    assert min(shifted) > 0.5


def test_histogram_quantile_matches_the_true_quantile_within_its_bucket() -> None:
    """Simulation: exponential latencies with a known p99 (mean x ln 100)."""
    rng = np.random.default_rng(3)
    bounds = LATENCY_BUCKETS
    for mean in (0.0005, 0.002, 0.02):
        values = rng.exponential(mean, 50_000)
        estimate = quantile(0.99, bounds, bucket_counts(np.array(bounds), values))
        truth = mean * math.log(100)
        i = int(np.searchsorted(bounds, truth))
        low = bounds[i - 1] if i else 0.0
        assert low <= estimate <= bounds[i], (mean, estimate, truth)
    assert math.isnan(quantile(0.99, bounds, [0] * (len(bounds) + 1)))
    beyond = [0] * len(bounds) + [5]
    assert quantile(0.99, bounds, beyond) == bounds[-1]  # all in +Inf: the highest bound
    assert quantile(0.5, (1.0, 2.0), [0, 10, 0]) == 1.5
