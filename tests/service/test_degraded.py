"""Degraded mode: a scorer whose registry production cannot be loaded keeps scoring with its
last-known-good model and says so, until the registry names a loadable version again.

Reproduces the defect where a scorer restarted while the registry pointed at a corrupt artifact
answered 503 to every request, and where a running scorer kept its old model silently.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import redis
from httpx import Client
from prometheus_client import CollectorRegistry

from registry import FileArtifactStore, ModelRegistry
from registry.artifacts import sha256_hex
from service.app import create_app
from service.live import Degraded, LiveModels
from service.loader import ModelLoader
from service.metrics import ServiceMetrics
from service.model_cache import ModelCache
from service.settings import ServiceSettings
from tests.factories import flip_stored_byte, logistic_model, make_manifest, random_rows
from tests.service.helpers import ADMIN, make_production, register, sample_value, wait_until
from tests.service.server import serving

ROW = random_rows(n=1)[0]


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def promote(registry: ModelRegistry, version: str) -> None:
    registry.approve("fraud", version, actor="test", reason="test", force=True)
    registry.promote("fraud", version, actor="test")


def corrupt(registry: ModelRegistry, root: Path, version: str) -> None:
    """One flipped byte in ``version``'s artifact under ``root``, after the registry verified
    it (a disk failing later)."""
    sha = registry.manifest("fraud", version).sha256
    assert sha is not None
    flip_stored_byte(root, sha)


def scorer(
    registry: ModelRegistry, cache: Path | None, clock: Clock | None = None
) -> tuple[ModelLoader, LiveModels, ServiceMetrics]:
    live, metrics = LiveModels(), ServiceMetrics(CollectorRegistry())
    loader = ModelLoader(
        registry,
        live,
        metrics,
        name="fraud",
        actor="scorer-test",
        cache=ModelCache(cache) if cache is not None else None,
        retry_s=30.0,
        clock=clock or Clock(),
    )
    return loader, live, metrics


def degraded_of(live: LiveModels) -> Degraded | None:
    return live.current.degraded  # a call: mypy does not carry narrowing across swaps


def served(live: LiveModels) -> str | None:
    production = live.current.production
    return None if production is None else production.version


def test_a_failed_swap_keeps_serving_says_degraded_and_retries(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    clock = Clock()
    loader, live, metrics = scorer(registry, tmp_path / "cache", clock)
    make_production(registry, "v1")
    loader.reconcile()
    assert ModelCache(tmp_path / "cache").version() == "v1"  # the last-known-good copy
    manifest = register(registry, "v2", bias=-1.0)
    promote(registry, "v2")
    corrupt(registry, tmp_path / "artifacts", "v2")
    assert loader.reconcile()
    assert served(live) == "v1"
    degraded = degraded_of(live)
    assert degraded is not None
    assert (degraded.registry_version, degraded.served_version) == ("v2", "v1")
    assert degraded.reason.startswith(
        f"scorer-test could not load fraud:v2 as production: artifact {manifest.sha256} "
        "failed its checksum: the stored bytes hash to "
    )
    assert sample_value(metrics, "shadowline_degraded") == 1
    assert not loader.reconcile()  # same revision, retry not due yet
    clock.now += 30
    assert loader.reconcile()  # tried again: still broken, reported once
    again = degraded_of(live)
    assert again is not None
    assert again.since == degraded.since
    labels = {"role": "production"}
    assert sample_value(metrics, "shadowline_model_swap_failures_total", labels) == 1
    notes = [e for e in registry.audit("fraud") if e.action == "note"]
    assert len([e for e in notes if e.actor == "scorer-test"]) == 1, notes
    FileArtifactStore(tmp_path / "artifacts").put(logistic_model(bias=-1.0))  # repaired
    clock.now += 30
    assert loader.reconcile()
    assert served(live) == "v2"
    assert degraded_of(live) is None
    assert sample_value(metrics, "shadowline_degraded") == 0
    assert ModelCache(tmp_path / "cache").version() == "v2"


def test_a_restart_serves_the_local_copy_until_the_registry_is_loadable(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    first, _, _ = scorer(registry, tmp_path / "cache")
    make_production(registry, "v1")
    first.reconcile()
    register(registry, "v2", bias=-1.0)
    promote(registry, "v2")
    corrupt(registry, tmp_path / "artifacts", "v2")

    restarted, live, metrics = scorer(registry, tmp_path / "cache")
    restarted.reconcile()
    assert served(live) == "v1"
    assert live.warmed
    degraded = degraded_of(live)
    assert degraded is not None
    assert (degraded.registry_version, degraded.served_version) == ("v2", "v1")
    assert sample_value(metrics, "shadowline_degraded") == 1
    register(registry, "v3", bias=-1.5)
    promote(registry, "v3")
    restarted.reconcile()
    assert served(live) == "v3"
    assert degraded_of(live) is None
    assert sample_value(metrics, "shadowline_degraded") == 0


def test_a_copy_of_the_very_production_version_still_says_degraded(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    # The scorer served v1 and kept its copy; later v1's stored artifact rots.  A restarted
    # scorer serves its copy of v1 (the registry's production), but the registry's artifact
    # is broken and a replica without a copy would not serve at all: it says so.
    first, _, _ = scorer(registry, tmp_path / "cache")
    make_production(registry, "v1")
    first.reconcile()
    corrupt(registry, tmp_path / "artifacts", "v1")
    restarted, live, metrics = scorer(registry, tmp_path / "cache")
    restarted.reconcile()
    assert served(live) == "v1"
    degraded = degraded_of(live)
    assert degraded is not None
    assert (degraded.registry_version, degraded.served_version) == ("v1", "v1")
    assert "could not load fraud:v1 as production: artifact " in degraded.reason
    assert sample_value(metrics, "shadowline_degraded") == 1


def test_without_a_usable_copy_nothing_is_served_and_readiness_says_why(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    make_production(registry, "v1")
    corrupt(registry, tmp_path / "artifacts", "v1")
    loader, live, _ = scorer(registry, None)
    loader.reconcile()
    assert served(live) is None
    assert not live.warmed
    degraded = degraded_of(live)
    assert degraded is not None
    assert (degraded.registry_version, degraded.served_version) == ("v1", None)
    assert degraded.reason.endswith(
        "; no last-known-good model to serve: the model cache is turned off "
        "(SHADOWLINE_MODEL_CACHE_DIR)"
    )
    empty, live, _ = scorer(registry, tmp_path / "empty-cache")
    empty.reconcile()
    missing = degraded_of(live)
    assert missing is not None
    assert missing.reason.endswith(
        f"; no last-known-good model to serve: model cache {tmp_path / 'empty-cache'}: "
        "no model is cached"
    )


def test_a_start_without_the_registry_serves_the_local_copy(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    first, _, _ = scorer(registry, tmp_path / "cache")
    make_production(registry, "v1")
    first.reconcile()
    restarted, live, _ = scorer(registry, tmp_path / "cache")
    assert restarted.fall_back("ConnectionError: Redis is down")
    assert served(live) == "v1"
    degraded = degraded_of(live)
    assert degraded is not None
    assert (degraded.registry_version, degraded.served_version) == (None, "v1")
    assert degraded.reason == "the registry cannot be read: ConnectionError: Redis is down"
    assert not restarted.fall_back("still down")  # something is served: nothing to do
    restarted.reconcile()  # the registry is back and names v1
    assert served(live) == "v1"
    assert degraded_of(live) is None


# ----------------------------------------------------------------- through HTTP


def readiness(client: Client) -> dict[str, object]:
    response = client.get("/readyz")
    assert response.status_code in (200, 503)
    body: dict[str, object] = response.json()
    body["status_code"] = response.status_code
    return body


def test_a_scorer_restarted_on_a_broken_production_still_scores(
    registry: ModelRegistry, make_settings: Callable[..., ServiceSettings], tmp_path: Path
) -> None:
    settings = make_settings()
    make_production(registry, "v1")
    with serving(create_app(settings, registry)) as client:
        assert wait_until(lambda: readiness(client)["status_code"] == 200)
    register(registry, "v2", bias=-1.0)
    promote(registry, "v2")
    corrupt(registry, tmp_path / "artifacts", "v2")

    with serving(create_app(settings, registry)) as client:
        ready = readiness(client)
        assert ready["status_code"] == 200
        degraded = ready["degraded"]
        assert isinstance(degraded, dict)
        assert (degraded["registry_version"], degraded["served_version"]) == ("v2", "v1")
        assert "could not load fraud:v2 as production: artifact " in degraded["reason"]
        scored = client.post("/v1/score", json={"transaction_id": "t-1", "features": ROW})
        assert scored.status_code == 200
        assert scored.json()["model_version"] == "v1"
        assert "shadowline_degraded 1.0" in client.get("/metrics").text
        register(registry, "v3", bias=-1.5)
        promote(registry, "v3")
        assert wait_until(lambda: readiness(client)["degraded"] is None)
        scored = client.post("/v1/score", json={"transaction_id": "t-2", "features": ROW})
        assert scored.json()["model_version"] == "v3"
        assert "shadowline_degraded 0.0" in client.get("/metrics").text


def test_a_running_scorer_whose_production_becomes_unloadable_keeps_serving(
    registry: ModelRegistry,
    redis_client: redis.Redis,
    make_settings: Callable[..., ServiceSettings],
    tmp_path: Path,
) -> None:
    """The scorer reads artifacts from a store of its own (another host's mount), whose copy
    of v2 goes bad after the registry verified v2 on the admin's store."""
    make_production(registry, "v1")
    register(registry, "v2", bias=-1.0)
    shutil.copytree(tmp_path / "artifacts", tmp_path / "replica-artifacts")
    corrupt(registry, tmp_path / "replica-artifacts", "v2")
    replica = ModelRegistry(redis_client, FileArtifactStore(tmp_path / "replica-artifacts"))
    with serving(create_app(make_settings(), replica)) as client:
        assert wait_until(lambda: readiness(client)["status_code"] == 200)
        promote(registry, "v2")  # verified on the admin's store: accepted
        assert wait_until(lambda: readiness(client)["degraded"] is not None)
        ready = readiness(client)
        assert ready["status_code"] == 200
        degraded = ready["degraded"]
        assert isinstance(degraded, dict)
        assert (degraded["registry_version"], degraded["served_version"]) == ("v2", "v1")
        scored = client.post("/v1/score", json={"transaction_id": "t-1", "features": ROW})
        assert (scored.status_code, scored.json()["model_version"]) == (200, "v1")
        registry.rollback("fraud", actor="test", reason="v2 does not load on a replica")
        assert wait_until(lambda: readiness(client)["degraded"] is None)
        assert readiness(client)["status_code"] == 200


def test_the_admin_api_refuses_a_corrupt_version_with_409(
    registry: ModelRegistry, make_settings: Callable[..., ServiceSettings], tmp_path: Path
) -> None:
    version = "v1"
    register(registry, version)
    corrupt(registry, tmp_path / "artifacts", version)
    sha = registry.manifest("fraud", version).sha256
    with serving(create_app(make_settings(), registry)) as client:
        refused = client.post(
            f"/admin/models/{version}/approve",
            json={"actor": "ana", "reason": "ship it", "force": True},
            headers=ADMIN,
        )
    assert refused.status_code == 409
    body = refused.json()
    assert body["detail"].startswith(
        f"cannot approve model fraud:{version}: its stored artifact failed verification: "
        f"artifact {sha} failed its checksum: "
    )
    assert body["errors"] == [body["detail"].split("verification: ", 1)[1]]
    last = registry.audit("fraud")[-1]
    assert (last.action, last.actor, last.reason) == ("refuse", "ana", "ship it")


def test_a_scorer_started_without_redis_scores_with_its_local_copy(
    make_settings: Callable[..., ServiceSettings], tmp_path: Path
) -> None:
    artifact = logistic_model(bias=-1.0)
    manifest = make_manifest(artifact, version="v6")
    ModelCache(tmp_path / "model-cache").save(
        manifest.model_copy(update={"sha256": sha256_hex(artifact)}), artifact
    )
    nowhere = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    down = ModelRegistry(
        redis.Redis.from_url(nowhere, decode_responses=True), FileArtifactStore(tmp_path)
    )
    with serving(create_app(make_settings(redis_url=nowhere), down)) as scorer:
        ready = readiness(scorer)
        assert ready["status_code"] == 200
        degraded = ready["degraded"]
        assert isinstance(degraded, dict)
        assert (degraded["registry_version"], degraded["served_version"]) == (None, "v6")
        assert degraded["reason"].startswith("the registry cannot be read: ConnectionError: ")
        scored = scorer.post("/v1/score", json={"transaction_id": "t-1", "features": ROW})
        assert (scored.status_code, scored.json()["model_version"]) == (200, "v6")
