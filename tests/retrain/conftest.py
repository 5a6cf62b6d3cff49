"""Fixtures for the retrain tests: small synthetic data, a real Redis, the real registry.

Sizes are chosen so a whole pipeline run takes a few seconds on a busy 2-core machine:
3,000 payments a week, 4 training weeks, 2 evaluation weeks, 30 trees.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry

from registry import FileArtifactStore, ModelRegistry
from registry.config import load_settings
from retrain.metrics import RetrainMetrics
from retrain.runner import Runner
from retrain.settings import RetrainSettings
from retrain.store import RegistryStore
from tests.retrain.helpers import SMALL


@pytest.fixture
def make_settings(tmp_path: Path, redis_url: str) -> Callable[..., RetrainSettings]:
    """Factory: small settings on the session Redis, runs and artifacts under tmp_path."""

    def make(**overrides: Any) -> RetrainSettings:
        values = {
            **SMALL,
            "redis_url": redis_url,
            "runs_dir": str(tmp_path / "runs"),
            "artifact_dir": str(tmp_path / "artifacts"),
            **overrides,
        }
        return load_settings(RetrainSettings, **values)

    return make


@pytest.fixture
def model_registry(redis_client: redis.Redis, tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(redis_client, FileArtifactStore(tmp_path / "artifacts"))


@pytest.fixture
def make_runner(
    redis_client: redis.Redis,
    model_registry: ModelRegistry,
    make_settings: Callable[..., RetrainSettings],
) -> Callable[..., Runner]:
    """Factory: a Runner on the real Redis and registry, with its own metrics registry."""

    def make(settings: RetrainSettings | None = None, **options: Any) -> Runner:
        return Runner(
            settings or make_settings(),
            client=redis_client,
            store=RegistryStore(model_registry),
            metrics=RetrainMetrics(CollectorRegistry()),
            **options,
        )

    return make
