"""The drift gauges: production's recent window against its own first period."""

from __future__ import annotations

import asyncio

import numpy as np
from prometheus_client import CollectorRegistry

from service.drift import Drift
from service.live import LiveModels, ModelSet
from service.metrics import ServiceMetrics
from service.signals import Reading
from service.watch import Watch
from tests.service.helpers import counts, loaded

RNG = np.random.default_rng(5)


def good(n: int) -> list[float]:
    return [float(x) for x in RNG.beta(1, 20, n)]


def gauges(metrics: ServiceMetrics) -> dict[str, float | None]:
    value = metrics.registry.get_sample_value
    rate = "shadowline_production_block_rate"
    return {
        "reference": value(rate, {"version": "v1", "period": "reference"}),
        "recent": value(rate, {"version": "v1", "period": "recent"}),
        "psi": value("shadowline_production_score_psi", {"version": "v1"}),
    }


def test_recent_against_the_first_period_and_a_new_version_starts_over() -> None:
    metrics = ServiceMetrics(CollectorRegistry())
    drift = Drift(metrics, reference_s=60, window_s=30, min_scored=100)
    first = counts([0.95] * 3 + good(297))  # the first minute: 1% blocked
    early = counts([0.95] * 2 + good(148))
    drift.update("v1", Reading(versions={"v1": counts([])}), now=0)
    drift.update("v1", Reading(versions={"v1": early}), now=30)
    assert gauges(metrics) == {"reference": None, "recent": None, "psi": None}
    drift.update("v1", Reading(versions={"v1": first}), now=60)
    assert drift.reference == first
    shown = gauges(metrics)
    assert shown["reference"] == 0.01
    assert shown["recent"] == (first - early).block_rate
    assert shown["psi"] is not None
    assert shown["psi"] < 0.25
    # The next 30 s, the model blocks half of what it scores: recent moves, the reference not.
    drifted = first + counts([0.95] * 100 + [0.5] * 100)
    drift.update("v1", Reading(versions={"v1": drifted}), now=90)
    shown = gauges(metrics)
    assert (shown["reference"], shown["recent"]) == (0.01, 0.5)
    assert shown["psi"] is not None
    assert shown["psi"] > 1.0
    drift.update("v2", Reading(versions={"v1": drifted}), now=95)
    assert gauges(metrics) == {"reference": None, "recent": None, "psi": None}
    assert drift.reference is None


def test_too_few_recent_transactions_show_the_reference_only() -> None:
    metrics = ServiceMetrics(CollectorRegistry())
    drift = Drift(metrics, reference_s=10, window_s=10, min_scored=100)
    drift.update("v1", Reading(versions={"v1": counts([])}), now=0)
    reference = counts(good(200))
    drift.update("v1", Reading(versions={"v1": reference}), now=10)
    drift.update("v1", Reading(versions={"v1": reference + counts(good(20))}), now=25)
    shown = gauges(metrics)
    assert shown["reference"] == reference.block_rate
    assert shown["recent"] is None


def test_the_watch_feeds_the_drift_monitor_from_the_live_metrics() -> None:
    metrics = ServiceMetrics(CollectorRegistry())
    live = LiveModels(ModelSet(1, loaded("v1")))
    drift = Drift(metrics, reference_s=1e-9, window_s=60, min_scored=1)
    clock = iter(float(t) for t in range(100))
    watch = Watch(live, metrics, drift, None, interval_s=1.0, clock=lambda: next(clock))
    asyncio.run(watch.tick())
    for decision in ("block", "allow", "allow", "allow"):
        metrics.decisions.labels("production", "v1", decision).inc()
        metrics.scores.labels("production", "v1").observe(0.95 if decision == "block" else 0.1)
    asyncio.run(watch.tick())
    assert drift.reference is not None
    assert (drift.reference.scored, drift.reference.blocked) == (4, 1)
    assert gauges(metrics)["reference"] == 0.25
