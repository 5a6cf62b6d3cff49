"""The scorer's own /metrics renderer against prometheus_client's, line for line."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator

import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Summary,
    generate_latest,
)
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from service.exposition import Exposition
from service.metrics import ServiceMetrics
from tests.deploy.prometheus import binary


def _without_created(text: str) -> list[str]:
    """``generate_latest``'s lines less its ``_created`` families (HELP, TYPE and samples)."""
    kept, skipping = [], False
    for line in text.splitlines():
        if line.startswith("# HELP "):
            skipping = line.split()[2].endswith("_created")
        if not skipping:
            kept.append(line)
    return kept


def _every_kind(registry: CollectorRegistry) -> dict[str, object]:
    """One metric of each kind the client has, with label values that need escaping."""
    counter = Counter(
        "t_requests", "Requests.\nSecond line \\ of help.", ["route", "code"], registry=registry
    )
    counter.labels("/v1/score", "200").inc(3)
    counter.labels('a "quoted"\\path\nnext', "500").inc()
    Counter("t_plain", "No labels.", registry=registry).inc(2.5)
    gauge = Gauge("t_depth", "Depth.", registry=registry)
    gauge.set(7)
    Gauge("t_computed", "Set by a function.", registry=registry).set_function(lambda: 1e21)
    hist = Histogram(
        "t_seconds", "Latency.", ["route"], buckets=(0.001, 0.5, 1e7), registry=registry
    )
    hist.labels("/v1/score").observe(0.0002)
    hist.labels("/v1/score").observe(3.0)
    hist.labels("/h\u00e9llo").observe(float("inf"))
    Summary("t_sizes", "Sizes.", registry=registry).observe(12)
    Info("t_build", "Build.", registry=registry).info({"version": "1.2"})
    Enum("t_state", "State.", states=["a", "b"], registry=registry).state("b")
    return {"counter": counter, "gauge": gauge, "hist": hist}


def test_it_writes_what_generate_latest_writes_except_the_created_series() -> None:
    registry = CollectorRegistry()
    _every_kind(registry)
    ours = Exposition(registry).render().decode()
    theirs = generate_latest(registry).decode()
    assert "_created" in theirs
    assert "_created" not in ours
    assert ours.splitlines() == _without_created(theirs)
    assert ours.endswith("\n")


class _Custom:
    """A collector of the shapes only custom collectors make: a gauge histogram (its _gsum
    and _gcount go into gauge families of their own), a timestamped sample, and a sample
    whose name does not start with its family's."""

    def collect(self) -> Iterator[Metric]:
        hist = GaugeHistogramMetricFamily("t_queue_wait", "Queue wait.", labels=["lane"])
        hist.add_metric(["fast"], [("0.1", 3.0), ("+Inf", 5.0)], gsum_value=0.7)
        yield hist
        stamped = GaugeMetricFamily("t_stamped", "Read at a time.", labels=["of"])
        stamped.add_metric(["disk"], 0.25, timestamp=1700000000.5)
        yield stamped
        odd = GaugeMetricFamily("t_odd", "A sample named otherwise.")
        odd.add_sample("t_xyz_gsum", {}, 1.0)  # as long a prefix as "t_odd"
        yield odd


def test_custom_collectors_render_as_the_client_renders_them() -> None:
    registry = CollectorRegistry()
    registry.register(_Custom())
    ours = Exposition(registry).render().decode()
    assert ours.splitlines() == _without_created(generate_latest(registry).decode())
    assert "# TYPE t_queue_wait_gsum gauge" in ours
    assert 't_stamped{of="disk"} 0.25 1700000000500' in ours


def test_renders_in_several_threads_at_once_each_give_the_whole_text() -> None:
    registry = CollectorRegistry()
    made = _every_kind(registry)
    counter = made["counter"]
    exposition = Exposition(registry)
    texts: list[str] = []
    failures: list[BaseException] = []

    def scrape() -> None:
        try:
            for _ in range(50):
                texts.append(exposition.render().decode())
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=scrape) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(200):  # series come and go while they render
        counter.labels(f"/r{i % 5}", "200").inc()  # type: ignore[attr-defined]
        if i % 5 == 4:
            for j in range(5):
                counter.remove(f"/r{j}", "200")  # type: ignore[attr-defined]
    for t in threads:
        t.join()
    assert not failures
    assert len(texts) == 150
    for text in texts:  # every render is a whole, well-formed exposition
        families = {f.name for f in text_string_to_metric_families(text)}
        assert {"t_requests", "t_seconds", "t_build_info", "t_state"} <= families
    final = exposition.render().decode()
    assert final.splitlines() == _without_created(generate_latest(registry).decode())


def test_later_renders_show_new_values_new_series_and_drop_removed_ones() -> None:
    registry = CollectorRegistry()
    made = _every_kind(registry)
    exposition = Exposition(registry)
    first = exposition.render().decode()
    counter, gauge, hist = made["counter"], made["gauge"], made["hist"]
    counter.labels("/v1/score", "200").inc()  # type: ignore[attr-defined]
    counter.remove('a "quoted"\\path\nnext', "500")  # type: ignore[attr-defined]
    counter.labels("/v1/batch", "422").inc()  # type: ignore[attr-defined]
    gauge.set(-0.5)  # type: ignore[attr-defined]
    hist.labels("/v1/batch").observe(0.2)  # type: ignore[attr-defined]
    second = exposition.render().decode()
    assert second != first
    assert second.splitlines() == _without_created(generate_latest(registry).decode())
    assert 't_requests_total{code="200",route="/v1/score"} 4.0' in second
    assert "quoted" not in second
    assert "t_depth -0.5" in second


def test_the_scorer_registry_renders_as_the_client_does_and_parses() -> None:
    registry = CollectorRegistry()
    metrics = ServiceMetrics(registry)
    metrics.request_seconds.labels("/v1/score", "200").observe(0.004)
    metrics.decisions.labels("production", "v1", "block").inc()
    ours = metrics.render().decode()
    assert ours.splitlines() == _without_created(generate_latest(registry).decode())
    families = {f.name for f in text_string_to_metric_families(ours)}
    assert {"shadowline_request_duration_seconds", "shadowline_decisions"} <= families


@pytest.mark.timeout(60)
def test_promtool_accepts_the_output() -> None:
    registry = CollectorRegistry()
    _every_kind(registry)
    ServiceMetrics(registry)
    checked = subprocess.run(
        [binary("promtool"), "check", "metrics"],
        input=Exposition(registry).render().decode(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
