"""Fixtures of the deployment checks: the kustomizations rendered once per session, scorer
settings on the test services, the real registry, a retrain worker's metrics endpoint."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry

from registry import FileArtifactStore, ModelRegistry, load_settings
from retrain.metrics import RetrainMetrics, serve_metrics
from service.settings import ServiceSettings
from tests.deploy.helpers import ADMIN_TOKEN
from tests.deploy.kustomize import Doc
from tests.deploy.manifests import kustomize_tree, render_all


@pytest.fixture(scope="session")
def kube_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A renderable copy of deploy/kubernetes (with a filled-in secrets.env)."""
    return kustomize_tree(tmp_path_factory.mktemp("kube"))


@pytest.fixture(scope="session")
def rendered(kube_tree: Path) -> dict[str, list[Doc]]:
    """``{"base" | "overlays/production" | "platform": resources}``."""
    return render_all(kube_tree)


@pytest.fixture
def registry(redis_client: redis.Redis, tmp_path: Path) -> ModelRegistry:
    """The real registry on the test's flushed Redis database and a fresh artifact store."""
    return ModelRegistry(redis_client, FileArtifactStore(tmp_path / "artifacts"))


@pytest.fixture
def make_scorer_settings(
    redis_url: str, kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path
) -> Callable[..., ServiceSettings]:
    """Factory: scorer settings on the test services (sidecar in a thread, a topic of this
    test's own), with ``overrides``."""

    def make(**overrides: Any) -> ServiceSettings:
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "kafka_bootstrap": kafka_bootstrap,
            "scores_topic": make_topic("scores"),
            "artifact_dir": str(tmp_path / "artifacts"),
            "admin_token": ADMIN_TOKEN,
            "reconcile_interval_s": 0.5,
            "sidecar_process": False,
            "shadow_batch_wait_ms": 1.0,
        }
        values.update(overrides)
        return load_settings(ServiceSettings, **values)

    return make


@pytest.fixture
def retrain_endpoint() -> Iterator[str]:
    """A retrain worker's metrics endpoint, as the worker serves it, after one good run and
    one scheduled analysis of shadow v2."""
    metrics = RetrainMetrics(CollectorRegistry())
    metrics.runs.labels(outcome="succeeded").inc()
    metrics.last_success.set(time.time())
    metrics.evidence_age.labels(version="v2").set(3600.0)
    for estimate, value in (("point", 0.03), ("low", -0.01), ("high", 0.07)):
        metrics.evidence_difference.labels(version="v2", estimate=estimate).set(value)
    metrics.evidence_matured_frauds.labels(version="v2").set(120)
    server = serve_metrics(metrics, 0, addr="127.0.0.1")
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
