"""The registry follower against the real Redis: the periodic check reads the revision on the
event loop and reconciles (loads, in a worker thread) only when it moved."""

from __future__ import annotations

import asyncio

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
