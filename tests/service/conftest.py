"""Fixtures of the scorer's tests: real (tiny) ONNX models, loaded; fresh metrics."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
import redis
from prometheus_client import CollectorRegistry

from registry import FileArtifactStore, ModelRegistry, load_settings
from registry.manifest import Manifest
from service.metrics import ServiceMetrics
from service.models import Feeds, LoadedModel, load_model
from service.settings import ServiceSettings
from tests.factories import logistic_model, make_manifest


def build(version: str = "v1", bias: float = -2.0, name: str = "fraud") -> LoadedModel:
    """A real logistic model, loaded and warmed by the scorer's own loader."""
    model = logistic_model(bias=bias)
    return load_model(make_manifest(model, name=name, version=version), model)


class FailingModel(LoadedModel):
    """A shadow whose inference raises (as a broken graph or runtime would)."""

    __slots__ = ()

    def run(self, feeds: Feeds) -> npt.NDArray[np.float64]:
        raise RuntimeError("model exploded")


class HangingModel(LoadedModel):
    """A shadow whose inference blocks until ``release`` is set."""

    __slots__ = ()
    release = threading.Event()

    def run(self, feeds: Feeds) -> npt.NDArray[np.float64]:
        self.release.wait(10)
        return super().run(feeds)


def variant(cls: type[LoadedModel], manifest: Manifest, artifact: bytes) -> LoadedModel:
    session = ort.InferenceSession(artifact, providers=["CPUExecutionProvider"])
    return cls(manifest, session, loaded_at=0.0)


@pytest.fixture
def metrics() -> ServiceMetrics:
    return ServiceMetrics(CollectorRegistry())


def sample_value(metrics: ServiceMetrics, name: str, labels: dict[str, str] | None = None) -> float:
    """A metric's current value from the registry (0 when the series does not exist)."""
    value = metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


ADMIN_TOKEN = "test-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def registry(redis_client: redis.Redis, tmp_path: Path) -> ModelRegistry:
    """The real registry on the test's flushed Redis database and a fresh artifact store."""
    return ModelRegistry(redis_client, FileArtifactStore(tmp_path / "artifacts"))


def register(registry: ModelRegistry, version: str, bias: float = -2.0) -> Manifest:
    """Register a real logistic model as ``version`` (different bias, different scores)."""
    model = logistic_model(bias=bias)
    return registry.register(model, make_manifest(model, version=version), actor="test")


def make_production(registry: ModelRegistry, version: str, bias: float = -2.0) -> None:
    """Register, approve (forced: no shadow evidence in tests) and promote ``version``."""
    register(registry, version, bias)
    registry.approve("fraud", version, actor="test", reason="test setup", force=True)
    registry.promote("fraud", version, actor="test")


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


def wait_until(
    condition: Callable[[], bool], timeout_s: float = 10.0, step_s: float = 0.02
) -> bool:
    """Poll ``condition`` until it holds; False after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step_s)
    return condition()
