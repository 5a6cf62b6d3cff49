"""Exactly one production model per name, even when many admins promote at once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
import redis

from registry import (
    ArtifactStore,
    Contention,
    IllegalTransition,
    ModelRegistry,
    RegistryError,
    State,
    transactions,
)
from registry.constants import deploy_key
from tests.registry.helpers import StepClock

THREADS = 24


def _approve_all(registry: ModelRegistry, registered: Callable[..., str], n: int) -> list[str]:
    versions = [registered(f"v{i}") for i in range(n)]
    for version in versions:
        registry.approve("fraud", version, actor="bob", reason="test set-up", force=True)
    return versions


def test_concurrent_promotes_of_different_versions_leave_one_production(
    registry: ModelRegistry,
    registered: Callable[..., str],
    redis_url: str,
    store: ArtifactStore,
) -> None:
    versions = _approve_all(registry, registered, THREADS)

    def promote(version: str) -> None:
        # One client per thread, as separate admin processes would have.
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            ModelRegistry(client, store, clock=StepClock()).promote(
                "fraud", version, actor=f"admin-{version}"
            )
        finally:
            client.close()

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(promote, versions))
    states = Counter(status.state for status in registry.list("fraud"))
    assert states == {State.PRODUCTION: 1, State.RETIRED: THREADS - 1}
    deployment = registry.deployment("fraud")
    assert registry.state("fraud", str(deployment.production)) is State.PRODUCTION
    # Every promote was applied exactly once, one after the other: no lost update.
    promotes = [e for e in registry.audit("fraud") if e.action == "promote"]
    assert len(promotes) == 2 * THREADS - 1
    assert deployment.revision == 2 * THREADS + THREADS
    assert registry.verify_audit("fraud").ok


def test_concurrent_promotes_of_one_version_succeed_once(
    registry: ModelRegistry, registered: Callable[..., str]
) -> None:
    (version,) = _approve_all(registry, registered, 1)
    outcomes: list[str] = []

    def promote(_: int) -> None:
        try:
            registry.promote("fraud", version, actor="admin")
            outcomes.append("ok")
        except IllegalTransition as exc:
            outcomes.append(str(exc))
        except RegistryError as exc:  # pragma: no cover - would fail the assertion below
            outcomes.append(f"unexpected: {exc}")

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(promote, range(THREADS)))
    assert Counter(outcomes) == {
        "ok": 1,
        "cannot promote model fraud:v0: it is in state production; allowed moves: none": (
            THREADS - 1
        ),
    }
    assert registry.deployment("fraud").production == version


def test_a_writer_that_always_loses_gives_up_without_writing(
    redis_client: redis.Redis,
    store: ArtifactStore,
    registered: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registered("v1")
    monkeypatch.setattr(transactions, "MAX_TRANSACTION_ATTEMPTS", 3)
    rival = StepClock()

    def meddling_clock() -> datetime:
        # Another writer touches the name between this writer's WATCH and its EXEC.
        redis_client.hset(deploy_key("fraud"), "touched", rival().isoformat())
        return rival()

    loser = ModelRegistry(redis_client, store, clock=meddling_clock)
    with pytest.raises(Contention) as caught:
        loser.shadow("fraud", "v1", rate=0.5, actor="alice")
    assert str(caught.value) == "model fraud: gave up after 3 conflicting concurrent updates"
    assert loser.state("fraud", "v1") is State.REGISTERED
    assert len(loser.audit("fraud")) == 1
