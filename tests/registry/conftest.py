"""Fixtures of the registry tests: a real Redis database and a real artifact store.

The tests of the lifecycle and of the store itself (``BOTH_BACKENDS``) run once per backend:
files on disk, and a bucket on the S3-compatible server.  The others (model formats, the
audit chain) run on the file store only: the backend changes nothing there, and training
their models twice would only cost time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner, Result

from registry import ApprovalPolicy, ModelRegistry
from registry.artifacts import ArtifactStore
from registry.manifest import Manifest
from shadowline.cli import app
from tests.factories import logistic_model, make_manifest
from tests.registry.helpers import Run, StepClock
from tests.registry.stores import make_store

POLICY = ApprovalPolicy(min_shadow_records=100, min_matured_frauds=50, tolerance=0.01)
BOTH_BACKENDS = {"test_artifacts", "test_lifecycle", "test_transitions", "test_concurrency"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_backend" in metafunc.fixturenames:
        both = metafunc.module.__name__.rsplit(".", 1)[-1] in BOTH_BACKENDS
        s3 = pytest.param("s3", marks=pytest.mark.s3)
        metafunc.parametrize("store_backend", ["file", s3] if both else ["file"])


@pytest.fixture
def store(store_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if store_backend == "file":
        return make_store("file", folder=tmp_path / "artifacts")
    return make_store(
        "s3",
        folder=tmp_path / "unused",
        endpoint=request.getfixturevalue("s3_endpoint"),
        bucket=request.getfixturevalue("s3_bucket"),
    )


@pytest.fixture
def registry(redis_client: redis.Redis, store: ArtifactStore) -> ModelRegistry:
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
