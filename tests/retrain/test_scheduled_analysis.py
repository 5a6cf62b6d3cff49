"""The worker's scheduled shadow analysis in drain mode, against the real broker and Redis.

Score records (as the scorer writes them) and their labels are on the topics; production v1,
challengers v2 and v3 and c1, v1's control, are in the registry.  One drain of the worker
analyses v2 and v3 (not c1, which is v2's noise floor), records their evidence as
``shadowline analyze --record`` does, and exports the evidence metrics; a failing analysis is
counted and stops neither the other versions nor the retrain run.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from registry import ApprovalPolicy, FileArtifactStore, ModelRegistry
from registry.manifest import Lineage
from registry.records import encode
from retrain.constants import ANALYSIS_KEY, SCHEDULE_KEY
from retrain.errors import AnalysisError
from retrain.metrics import ANALYSIS_FAILURES, serve_metrics
from retrain.records import RunStore
from retrain.runner import Runner
from retrain.scheduled_analysis import ScheduledAnalysis, failure_reason
from retrain.settings import RetrainSettings
from retrain.worker import Worker
from shadowline.cli import app
from tests.factories import logistic_model, make_manifest
from tests.retrain.evidence.records import T0, produce, traffic
from tests.retrain.helpers import SimulatedClock

TRANSACTIONS = 1200
DAY = 86_400.0
NOW = T0 + 30 * DAY  # every label is in and matured


def _registry(client: redis.Redis, tmp_path: Path, clock: SimulatedClock) -> ModelRegistry:
    """v1 in production; v2, v3 and v1's control c1 in shadow."""
    registry = ModelRegistry(
        client, FileArtifactStore(tmp_path / "artifacts"), policy=ApprovalPolicy(), clock=clock.utc
    )
    for n, version in enumerate(("v1", "v2", "v3", "c1")):
        model = logistic_model(bias=-2.0 - n / 10)
        lineage = Lineage(control_of="v1", seed=2) if version == "c1" else Lineage(seed=1)
        manifest = make_manifest(model, version=version, lineage=lineage)
        registry.register(model, manifest, actor="alice")
    registry.approve("fraud", "v1", actor="alice", reason="first model", force=True)
    registry.promote("fraud", "v1", actor="alice")
    for version in ("v2", "v3", "c1"):
        registry.shadow("fraud", version, rate=1.0, actor="alice")
    return registry


def _worker(
    make_runner: Callable[..., Runner],
    settings: RetrainSettings,
    registry: ModelRegistry,
    client: redis.Redis,
    clock: SimulatedClock,
) -> Worker:
    runner = make_runner(settings, clock=clock)
    analysis = ScheduledAnalysis(settings, registry, runner.metrics, client=client, clock=clock)
    return Worker(
        runner,
        RunStore(client),
        schedule=settings.schedule,
        health_ttl_s=30,
        clock=clock,
        analysis=analysis,
    )


@pytest.fixture
def settings(
    make_settings: Callable[..., RetrainSettings],
    make_topic: Callable[..., str],
    kafka_bootstrap: str,
    tmp_path: Path,
) -> RetrainSettings:
    """Topics of this test; an empty data folder, so the retrain run fails at once."""
    (tmp_path / "empty").mkdir()
    return make_settings(
        kafka_bootstrap=kafka_bootstrap,
        scores_topic=make_topic("scores", partitions=2),
        labels_topic=make_topic("labels"),
        evidence_dir=str(tmp_path / "evidence"),
        data_source=str(tmp_path / "empty"),
        analysis_timeout_s=60.0,
    )


def _sample(worker: Worker, name: str, **labels: str) -> float | None:
    return worker.runner.metrics.registry.get_sample_value(name, labels)


def test_the_worker_analyses_every_shadow_on_schedule_and_exports_the_evidence(
    make_runner: Callable[..., Runner],
    settings: RetrainSettings,
    redis_client: redis.Redis,
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    scores, labels = traffic(TRANSACTIONS, {"v2": 3, "c1": 2})
    produce(kafka_bootstrap, settings.scores_topic, [(s.transaction_id, encode(s)) for s in scores])
    produce(kafka_bootstrap, settings.labels_topic, [(x.transaction_id, encode(x)) for x in labels])
    clock = SimulatedClock(NOW)
    registry = _registry(redis_client, tmp_path, clock)
    worker = _worker(make_runner, settings, registry, redis_client, clock)

    [run] = worker.drain()
    assert run.outcome == "failed"  # the retrain schedule went on (its data folder is empty)
    assert [(a.version, a.recorded) for a in worker.analysed] == [("v2", True), ("v3", True)]
    evidence = registry.evidence("fraud", "v2")
    assert evidence is not None
    assert worker.analysed[0].detail == (
        f"{evidence.ref}: {evidence.summary()}; policy: approval allowed"
    )
    assert (evidence.matured_frauds, evidence.production_version) == (60, "v1")
    assert evidence.difference is not None
    assert evidence.difference_ci is not None
    assert evidence.control is not None
    assert evidence.control.version == "c1"  # the control is the noise floor of v2 ...
    assert evidence.control.verdict
    assert registry.evidence("fraud", "c1") is None  # ... and not analysed on its own
    assert Path(evidence.report).is_file()
    assert registry.approval_violations("fraud", "v2") == []
    assert float(redis_client.get(ANALYSIS_KEY) or 0) == NOW - 22_000  # 05:00 that day

    # The metrics show it, over HTTP as Prometheus scrapes them.
    clock.now += 3600
    server = serve_metrics(worker.runner.metrics, 0, addr="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert 'shadowline_evidence_age_seconds{version="v2"} 3600.0' in text
    assert f'shadowline_evidence_matured_frauds{{version="v2"}} {60.0}' in text
    for estimate, value in (
        ("point", evidence.difference),
        ("low", evidence.difference_ci.low),
        ("high", evidence.difference_ci.high),
    ):
        assert _sample(
            worker, "shadowline_evidence_difference", version="v2", estimate=estimate
        ) == (pytest.approx(value))
    # v3 was never scored in shadow: evidence without a difference yet, so no value for it.
    assert _sample(worker, "shadowline_evidence_age_seconds", version="v3") == 3600.0
    assert _sample(worker, "shadowline_evidence_difference", version="v3", estimate="point") is None
    assert _sample(worker, "shadowline_evidence_age_seconds", version="c1") is None
    for reason in ANALYSIS_FAILURES:
        assert _sample(worker, "shadowline_evidence_analysis_failures_total", reason=reason) == 0

    # The slot was handled: nothing more until the next one; a version leaving shadow
    # leaves the metrics at the next tick.
    registry.unshadow("fraud", "v3", actor="alice")
    assert worker.drain() == []
    assert worker.analysed[0].version == "v2"  # still the last slot's
    assert _sample(worker, "shadowline_evidence_age_seconds", version="v3") is None
    clock.now += DAY
    worker.drain()
    assert [a.version for a in worker.analysed] == ["v2"]
    assert _sample(worker, "shadowline_evidence_age_seconds", version="v2") == 0.0


def test_a_failing_analysis_is_counted_and_stops_neither_the_others_nor_the_run(
    make_runner: Callable[..., Runner],
    settings: RetrainSettings,
    redis_client: redis.Redis,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = SimulatedClock(NOW)
    registry = _registry(redis_client, tmp_path, clock)
    dead = settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:1"})
    worker = _worker(make_runner, dead, registry, redis_client, clock)
    with caplog.at_level(logging.WARNING, logger="retrain.scheduled_analysis"):
        [run] = worker.drain()
    assert run.outcome == "failed"
    assert run.reason.startswith("step ingest: ")  # the run was attempted all the same
    assert [(a.version, a.recorded) for a in worker.analysed] == [("v2", False), ("v3", False)]
    assert worker.analysed[0].detail == (
        f"analysis: cannot reach Kafka at 127.0.0.1:1 to read {settings.scores_topic}: "
        "127.0.0.1:1: Connection refused"
    )
    assert _sample(worker, "shadowline_evidence_analysis_failures_total", reason="analysis") == 2
    assert caplog.records[0].getMessage() == (
        f"analysis of fraud:v2 failed (analysis): {worker.analysed[0].detail[10:]}"
    )
    assert registry.evidence("fraud", "v2") is None
    assert worker.drain() == []  # the slot counts as handled: the next slot tries again


def test_failures_are_named_by_kind() -> None:
    from registry.errors import ModelNotFound

    assert failure_reason(AnalysisError("topic t does not exist")) == "analysis"
    assert failure_reason(ModelNotFound("fraud", "v9")) == "registry"
    assert failure_reason(redis.ConnectionError("down")) == "redis"
    assert failure_reason(ValueError("bug")) == "unexpected"


def test_worker_once_prints_each_analysis_and_exits_1_when_one_failed(
    in_tmp_cwd: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    _registry(redis_client, in_tmp_cwd, SimulatedClock(NOW))
    redis_client.set(SCHEDULE_KEY, repr(1e12))  # no retrain slot is due: only the analysis
    env = {
        "SHADOWLINE_REDIS_URL": redis_url,
        "SHADOWLINE_KAFKA_BOOTSTRAP": "127.0.0.1:1",
        "SHADOWLINE_ARTIFACT_DIR": str(in_tmp_cwd / "artifacts"),
    }
    result = CliRunner().invoke(app, ["retrain", "worker", "--once"], env=env)
    assert result.exit_code == 1, result.output
    unreachable = (
        "analysis: cannot reach Kafka at 127.0.0.1:1 to read shadowline.scores: "
        "127.0.0.1:1: Connection refused"
    )
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("analysis")] == [
        f"analysis failed for fraud:v2: {unreachable}",
        f"analysis failed for fraud:v3: {unreachable}",
    ]
    # The worker's roll-out check runs too, and says there is nothing to roll out.
    assert "roll-out: nothing to roll out: no approved version" in lines
    assert result.stderr == "error: analysis of fraud:v2 failed\n"
