"""Hot swap through the real registry: follow production and shadows, survive a bad load,
keep the previous model warm, leave the shadows' sessions to the sidecar, and do not grow
memory across swaps."""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import redis

from registry import ModelRegistry
from registry.constants import version_key
from registry.manifest import Manifest
from service.live import LiveModels, ModelSet
from service.loader import ModelLoader
from service.metrics import ServiceMetrics
from service.models import LoadedModel, ModelBytes, load_model
from service.producer import ProducerConfig
from service.sidecar import Sidecar
from service.sidecar_loop import SidecarConfig, SpoolConfig
from shadowline.stack import free_port
from tests.service.helpers import make_production, register, sample_value, wait_until


def loader_for(
    registry: ModelRegistry,
    metrics: ServiceMetrics,
    load: Callable[[Manifest, bytes], LoadedModel] = load_model,
) -> tuple[ModelLoader, LiveModels]:
    live = LiveModels()
    loader = ModelLoader(registry, live, metrics, name="fraud", actor="scorer-test", load=load)
    return loader, live


def warmed(live: LiveModels) -> bool:
    return live.warmed  # a call, so mypy does not carry the narrowing from one check to the next


def promote(registry: ModelRegistry, version: str) -> None:
    registry.approve("fraud", version, actor="test", reason="test", force=True)
    registry.promote("fraud", version, actor="test")


def test_follows_production_and_shadows(
    registry: ModelRegistry, metrics: ServiceMetrics, redis_client: redis.Redis
) -> None:
    loader, live = loader_for(registry, metrics)
    assert loader.reconcile()  # revision 0: nothing registered, nothing live
    assert live.current == ModelSet(0)
    assert not warmed(live)
    make_production(registry, "v1")
    assert loader.reconcile()
    first = live.current.production
    assert first is not None
    assert first.version == "v1"
    assert warmed(live)
    assert not loader.reconcile()  # same revision: nothing to do
    register(registry, "v2", bias=-1.0)
    registry.shadow("fraud", "v2", rate=0.25, actor="test")
    assert loader.reconcile()
    assert live.current.shadow_versions == {"v2": 0.25}
    assert live.current.production is first
    promote(registry, "v2")
    loader.reconcile()
    assert live.current.production is not None
    assert live.current.production.version == "v2"
    assert live.current.shadows == ()
    registry.rollback("fraud", actor="test")
    loader.reconcile()
    assert live.current.production is first  # kept warm: a rollback loads nothing
    assert sample_value(metrics, "shadowline_model_swaps_total", {"role": "production"}) == 3
    redis_client.flushdb()  # the registry lost its data: revision 0 < the loaded revision
    assert not loader.reconcile()
    assert live.current.production is first
    assert sample_value(metrics, "shadowline_model_age_seconds") > 0


def test_a_failed_load_keeps_the_old_model_and_is_reported(
    registry: ModelRegistry, metrics: ServiceMetrics, tmp_path: Path
) -> None:
    loader, live = loader_for(registry, metrics)
    make_production(registry, "v1")
    loader.reconcile()
    manifest = register(registry, "v2", bias=-1.0)
    assert manifest.sha256 is not None
    promote(registry, "v2")  # verified by the registry; the disk fails afterwards
    stored = tmp_path / "artifacts" / manifest.sha256[:2] / manifest.sha256
    stored.chmod(0o644)
    stored.write_bytes(b"corrupted on disk")
    assert loader.reconcile()
    assert live.current.production is not None
    assert live.current.production.version == "v1"
    labels = {"role": "production"}
    assert sample_value(metrics, "shadowline_model_swap_failures_total", labels) == 1
    notes = [e for e in registry.audit("fraud") if e.action == "note"]
    assert len(notes) == 1
    assert notes[0].actor == "scorer-test"
    assert notes[0].reason.startswith(
        "scorer-test could not load fraud:v2 as production: artifact "
    )
    loader.reconcile(force=True)  # same revision: the broken version is not retried
    assert sample_value(metrics, "shadowline_model_swap_failures_total", labels) == 1


def test_an_unreachable_artifact_store_is_retried_at_the_next_reconcile(
    registry: ModelRegistry, metrics: ServiceMetrics, tmp_path: Path
) -> None:
    make_production(registry, "v1")
    root = tmp_path / "artifacts"
    root.rename(tmp_path / "away")
    root.write_text("a file where the store's folder should be: reads fail with an OSError")
    loader, live = loader_for(registry, metrics)
    assert loader.reconcile()
    assert not warmed(live)  # not ready while the store cannot be read
    labels = {"role": "production"}
    assert sample_value(metrics, "shadowline_model_swap_failures_total", labels) == 1
    assert [e for e in registry.audit("fraud") if e.action == "note"] == []
    root.unlink()
    (tmp_path / "away").rename(root)  # the store answers again; the revision has not moved
    assert loader.reconcile()
    assert live.current.production is not None
    assert live.current.production.version == "v1"
    assert warmed(live)
    assert not loader.reconcile()


def test_shadows_are_held_as_bytes_and_built_only_when_promoted(
    registry: ModelRegistry, metrics: ServiceMetrics
) -> None:
    # The sidecar runs the shadows: the scorer builds no session for one (its event loop would
    # pay for it in the second the set changes) until it is promoted.
    built: list[str] = []

    def load(manifest: Manifest, artifact: bytes) -> LoadedModel:
        built.append(manifest.version)
        return load_model(manifest, artifact)

    loader, live = loader_for(registry, metrics, load)
    make_production(registry, "v1")
    register(registry, "v2", bias=-1.0)
    registry.shadow("fraud", "v2", rate=0.5, actor="test")
    assert loader.reconcile()
    assert built == ["v1"]
    [slot] = live.current.shadows
    assert isinstance(slot.model, ModelBytes)
    assert slot.model.artifact == registry.artifact("fraud", "v2")  # checksum-verified bytes
    assert slot.model.manifest == registry.manifest("fraud", "v2")
    labels = {"role": "shadow", "version": "v2", "sha256": slot.model.sha256}
    assert sample_value(metrics, "shadowline_model_info", labels) == slot.model.loaded_at
    register(registry, "v3", bias=-1.5)
    registry.shadow("fraud", "v3", rate=1.0, actor="test")  # a new revision: v2 is not fetched
    assert loader.reconcile()
    assert live.current.shadows[0].model is slot.model
    assert built == ["v1"]
    promote(registry, "v2")
    assert loader.reconcile()
    assert built == ["v1", "v2"]  # built from the bytes held, before the swap
    assert live.current.production is not None
    assert live.current.production.version == "v2"
    assert live.current.shadow_versions == {"v3": 1.0}


def test_a_shadow_its_sidecar_cannot_load_is_reported_and_left_out(
    registry: ModelRegistry, metrics: ServiceMetrics, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # A golden example that no longer matches its model (the registry verified it; the stored
    # manifest changed afterwards): the scorer does not run the golden examples of a shadow,
    # the sidecar does.  Its failure comes back to the loader, which says so like any failed
    # load and leaves the shadow out.
    loader, live = loader_for(registry, metrics)
    make_production(registry, "v1")
    register(registry, "v2", bias=-1.0)
    registry.shadow("fraud", "v2", rate=1.0, actor="test")
    key = version_key("fraud", "v2")
    manifest = json.loads(redis_client.hget(key, "manifest"))  # type: ignore[arg-type]
    manifest["golden_examples"][0]["expected_score"] += 0.25
    redis_client.hset(key, "manifest", json.dumps(manifest))
    assert loader.reconcile()
    assert live.current.shadow_versions == {"v2": 1.0}
    servers = (f"127.0.0.1:{free_port()}",)
    no_broker = ProducerConfig(servers=servers, topic="scores", max_in_flight=100)
    spool = SpoolConfig(str(tmp_path / "spool"), max_bytes=1 << 20)  # no broker: it accepts
    sidecar = Sidecar(
        SidecarConfig(no_broker, stats_interval_s=0.05, spool=spool),
        live,
        metrics,
        queue_size=10,
        in_process=True,
        on_load_failure=loader.shadow_failed,
    )
    sidecar.start()
    try:
        assert wait_until(lambda: loader.retry_due)
    finally:
        sidecar.close(timeout_s=1.0)
    assert loader.reconcile()  # the next check: same revision, one failure to report
    assert live.current.shadows == ()
    labels = {"role": "shadow"}
    assert sample_value(metrics, "shadowline_model_swap_failures_total", labels) == 1
    [note] = [e for e in registry.audit("fraud") if e.action == "note"]
    assert note.reason.startswith(
        "scorer-test could not load fraud:v2 as shadow: in its sidecar: golden example 0 scored"
    )
    assert not loader.retry_due
    assert not loader.reconcile(force=False)
    loader.shadow_failed("v2", "again")  # a late report for the same revision: reported once
    loader.shadow_failed("v9", "not a shadow")  # nor is a version that is not in shadow
    assert loader.reconcile()
    assert live.current.shadows == ()
    assert sample_value(metrics, "shadowline_model_swap_failures_total", labels) == 1
    register(registry, "v3", bias=-1.5)
    registry.shadow("fraud", "v3", rate=0.5, actor="test")  # a new revision: v2 is tried again
    assert loader.reconcile()
    assert live.current.shadow_versions == {"v2": 1.0, "v3": 0.5}


@pytest.mark.slow
def test_memory_does_not_grow_across_200_swaps(
    registry: ModelRegistry, metrics: ServiceMetrics
) -> None:
    versions = [f"v{i}" for i in range(201)]
    for i, version in enumerate(versions):
        register(registry, version, bias=-2.0 + i / 1000)
    loader, live = loader_for(registry, metrics)
    process = psutil.Process(os.getpid())
    rss: dict[int, int] = {}
    for swaps, version in enumerate(versions):
        promote(registry, version)
        loader.reconcile()
        assert live.current.production is not None
        assert live.current.production.version == version
        if swaps in (10, 200):
            gc.collect()
            rss[swaps] = process.memory_info().rss
    assert rss[200] <= rss[10] * 1.10, f"RSS grew from {rss[10]:,} to {rss[200]:,} bytes"
