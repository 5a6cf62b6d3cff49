"""Fixtures of the registry tests: a real Redis database, a real artifact store on disk."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner, Result

from registry import ApprovalPolicy, FileArtifactStore, ModelRegistry, ShadowEvidence
from registry.manifest import Manifest
from shadowline.cli import app
from tests.factories import logistic_model, make_manifest
from tests.registry.helpers import Run

POLICY = ApprovalPolicy(min_shadow_records=100, max_regression=0.01)


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


def good_evidence(production: str | None = "v1", records: int = 500) -> ShadowEvidence:
    return ShadowEvidence(
        production_version=production,
        shadow_records=records,
        labeled_records=records // 2,
        challenger_value=0.81,
        production_value=0.80 if production else None,
    )


@pytest.fixture
def run(redis_url: str, redis_client: redis.Redis, in_tmp_cwd: Path) -> Run:
    """Run ``shadowline models <args>`` with settings pointing at the test Redis."""
    env = {
        "SHADOWLINE_REDIS_URL": redis_url,
        "SHADOWLINE_ARTIFACT_DIR": str(in_tmp_cwd / "artifacts"),
        "SHADOWLINE_MODEL_NAME": "fraud",
    }

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(app, ["models", *args], env=env)

    return invoke
