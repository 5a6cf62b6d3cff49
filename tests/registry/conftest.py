"""Fixtures of the registry tests: a real Redis database, a real artifact store on disk."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from registry import ApprovalPolicy, FileArtifactStore, ModelRegistry
from registry.manifest import Manifest
from tests.factories import logistic_model, make_manifest

POLICY = ApprovalPolicy(min_shadow_records=100, min_matured_frauds=50, tolerance=0.01)


class StepClock:
    """A clock that advances one second per reading, so audit times are distinct and known."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> FileArtifactStore:
    return FileArtifactStore(tmp_path / "artifacts")


@pytest.fixture
def registry(redis_client: redis.Redis, store: FileArtifactStore) -> ModelRegistry:
    return ModelRegistry(redis_client, store, policy=POLICY, clock=StepClock())


@pytest.fixture
def model_for() -> Callable[..., tuple[bytes, Manifest]]:
    """Factory: a distinct valid model + manifest for each version string."""

    def make(version: str, name: str = "fraud") -> tuple[bytes, Manifest]:
        bias = -2.0 - (sum(map(ord, version)) % 97) / 100
        model = logistic_model(bias=bias)
        return model, make_manifest(model, name=name, version=version)

    return make


@pytest.fixture
def registered(
    registry: ModelRegistry, model_for: Callable[..., tuple[bytes, Manifest]]
) -> Callable[..., str]:
    """Factory: register ``version`` of fraud and return the version."""

    def make(version: str, name: str = "fraud") -> str:
        model, manifest = model_for(version, name)
        registry.register(model, manifest, actor="alice")
        return version

    return make
