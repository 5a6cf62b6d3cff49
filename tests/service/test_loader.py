"""Hot swap through the real registry: follow production and shadows, survive a bad load,
keep the previous model warm, and do not grow memory across swaps."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import psutil
import pytest
import redis

from registry import ModelRegistry
from service.live import LiveModels, ModelSet
from service.loader import ModelLoader
from service.metrics import ServiceMetrics
from tests.service.helpers import make_production, register, sample_value


def loader_for(registry: ModelRegistry, metrics: ServiceMetrics) -> tuple[ModelLoader, LiveModels]:
    live = LiveModels()
    return ModelLoader(registry, live, metrics, name="fraud", actor="scorer-test"), live


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
