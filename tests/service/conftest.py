"""Fixtures of the scorer's tests: fresh metrics, the real registry, settings on the test
services.  Helpers live in :mod:`tests.service.helpers`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry

from registry import FileArtifactStore, ModelRegistry, load_settings
from service.metrics import ServiceMetrics
from service.producer import KAFKA_CLIENTS
from service.settings import ServiceSettings
from tests.service.helpers import ADMIN_TOKEN


@pytest.fixture
def metrics() -> ServiceMetrics:
    return ServiceMetrics(CollectorRegistry())


@pytest.fixture(params=KAFKA_CLIENTS)
def kafka_client(request: pytest.FixtureRequest) -> str:
    """Each Kafka client the sidecar's producer can use (SHADOWLINE_KAFKA_CLIENT)."""
    return str(request.param)


@pytest.fixture
def registry(redis_client: redis.Redis, tmp_path: Path) -> ModelRegistry:
    """The real registry on the test's flushed Redis database and a fresh artifact store."""
    return ModelRegistry(redis_client, FileArtifactStore(tmp_path / "artifacts"))


@pytest.fixture
def make_settings(
    redis_url: str, kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path
) -> Callable[..., ServiceSettings]:
    """Factory: scorer settings on the test services and a topic of this test's own."""

    def make(**overrides: Any) -> ServiceSettings:
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "kafka_bootstrap": kafka_bootstrap,
            "scores_topic": make_topic("scores"),
            "artifact_dir": str(tmp_path / "artifacts"),
            "model_cache_dir": str(tmp_path / "model-cache"),
            "admin_token": ADMIN_TOKEN,
            "reconcile_interval_s": 0.5,
            "sidecar_process": False,
            "shadow_batch_wait_ms": 1.0,
            "spool_dir": str(tmp_path / "spool"),
        }
        values.update(overrides)
        return load_settings(ServiceSettings, **values)

    return make
