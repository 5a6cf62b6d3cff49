"""The registry follower against the real Redis: the periodic check reads the revision on the
event loop and reconciles (loads, in a worker thread) only when it moved."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

import pytest
import redis
import redis.asyncio as aioredis

from registry import ModelRegistry
from service.follower import RegistryFollower
from service.live import LiveModels
from service.metrics import ServiceMetrics
from tests.lifecycle import NAME, register
from tests.service.helpers import CountingLoader, make_production, sample_value


def test_the_periodic_check_reconciles_only_when_the_revision_moved(
    registry: ModelRegistry, redis_url: str, metrics: ServiceMetrics
) -> None:
    make_production(registry, "v1")
    live = LiveModels()
    loader = CountingLoader(registry, live, metrics, name=NAME)

    def connect() -> aioredis.Redis:
        return aioredis.Redis.from_url(redis_url)

    follower = RegistryFollower(
        loader, connect, metrics, name=NAME, channel="unused", interval_s=1.0
    )

    async def scenario() -> list[int]:
        client = connect()
        try:
            await follower.reconcile()
            counts = [loader.reconciles]
            await follower.check(client)
            await follower.check(client)
            counts.append(loader.reconciles)
            register(registry, "v2", bias=-1.0)
            registry.shadow(NAME, "v2", rate=0.5, actor="test")
            await follower.check(client)
            counts.append(loader.reconciles)
            await follower.check(client)
            counts.append(loader.reconciles)
            return counts
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) == [1, 1, 2, 2]
    assert live.current.shadow_versions == {"v2": 0.5}
    assert live.current.revision == registry.deployment(NAME).revision
    assert follower.reachable
    assert sample_value(metrics, "shadowline_registry_reachable") == 1


class _SlowLoader(CountingLoader):
    """Each reconcile waits until the test lets it go (a model that takes long to load)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.started = threading.Event()
        self.release = threading.Event()
        self.finished = 0

    def reconcile(self, *, force: bool = False) -> bool:
        self.started.set()
        self.release.wait(10)
        try:
            return super().reconcile(force=force)
        finally:
            self.finished += 1


def _follower_with_slow_loads(
    registry: ModelRegistry, redis_url: str, metrics: ServiceMetrics
) -> tuple[_SlowLoader, RegistryFollower]:
    make_production(registry, "v1")
    loader = _SlowLoader(registry, LiveModels(), metrics, name=NAME)
    return loader, _follower(loader, redis_url, metrics)


def _follower(loader: CountingLoader, redis_url: str, metrics: ServiceMetrics) -> RegistryFollower:
    """A follower of ``loader`` that only reconciles when told (no pub/sub, no ticks)."""
    return RegistryFollower(
        loader,
        lambda: aioredis.Redis.from_url(redis_url),
        metrics,
        name=NAME,
        channel="unused",
        interval_s=1.0,
    )


async def _cancel_during_a_load(loader: _SlowLoader, follower: RegistryFollower) -> None:
    """Start a reconcile, and cancel it (as a shutdown cancels the follower) once its load
    runs in the loader thread."""
    task = asyncio.create_task(follower.reconcile())
    await asyncio.to_thread(loader.started.wait, 10)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_close_waits_for_a_load_under_way_and_runs_no_more(
    registry: ModelRegistry, redis_url: str, metrics: ServiceMetrics
) -> None:
    """Cancelling the follower does not stop a reconcile handed to its thread; ``close`` waits
    for it, so a scorer that shut down never touches the registry afterwards."""
    loader, follower = _follower_with_slow_loads(registry, redis_url, metrics)

    async def scenario() -> None:
        await _cancel_during_a_load(loader, follower)
        assert loader.finished == 0  # still loading in its thread
        threading.Timer(0.2, loader.release.set).start()
        await asyncio.to_thread(follower.close)
        assert loader.finished == 1  # close returned only after the load ended

    asyncio.run(scenario())
    asyncio.run(follower.reconcile())  # a closed follower starts no further load
    assert loader.reconciles == 1


def test_close_does_not_wait_past_its_limit_for_a_stuck_load(
    registry: ModelRegistry,
    redis_url: str,
    metrics: ServiceMetrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A load stuck on an artifact store that does not answer cannot hold a shutdown."""
    loader, follower = _follower_with_slow_loads(registry, redis_url, metrics)

    async def scenario() -> None:
        await _cancel_during_a_load(loader, follower)
        await asyncio.to_thread(follower.close, 0.1)
        assert loader.finished == 0  # still stuck: close returned anyway

    try:
        asyncio.run(scenario())
        assert "a model load still runs after 0.1s" in caplog.text
    finally:
        loader.release.set()


class _ShutDownMidLoad(CountingLoader):
    """A reconcile during which the scorer shuts down (``close`` from another thread) and the
    registry goes away: the follower's fallback then comes after the close."""

    follower: RegistryFollower | None = None
    fell_back = 0

    def reconcile(self, *, force: bool = False) -> bool:
        self.reconciles += 1
        assert self.follower is not None
        self.follower.close(0.0)  # from this load's own thread: its wait gives up at once
        raise redis.ConnectionError("the registry went away")

    def fall_back(self, reason: str) -> bool:
        self.fell_back += 1
        return super().fall_back(reason)


def test_a_load_failing_while_the_scorer_shuts_down_hands_nothing_more_over(
    registry: ModelRegistry,
    redis_url: str,
    metrics: ServiceMetrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A registry failure during shutdown: no fallback load is handed to the stopped thread
    (that raised "cannot schedule new futures after shutdown" out of the reconcile), and no
    error is logged."""
    loader = _ShutDownMidLoad(registry, LiveModels(), metrics, name=NAME)
    follower = loader.follower = _follower(loader, redis_url, metrics)

    asyncio.run(follower.reconcile())

    assert (loader.reconciles, loader.fell_back) == (1, 0)
    assert not follower.reachable  # the failure itself is still reported
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
