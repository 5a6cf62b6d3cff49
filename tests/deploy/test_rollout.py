"""Approval is the one human move: approved through the admin API, rolled out by the retrain
worker (drain mode) inside its deployment window, served by a real scorer within 2 s of the
worker's move; the audit names the approver and the worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry

from registry import ModelRegistry, load_settings
from retrain.constants import SCHEDULE_KEY
from retrain.metrics import RetrainMetrics
from retrain.records import RunStore
from retrain.rollout import Rollout
from retrain.runner import Runner
from retrain.settings import RetrainSettings
from retrain.worker import Worker, latest_slot
from service.app import create_app
from service.settings import ServiceSettings
from tests.clocks import Clock
from tests.deploy.helpers import ADMIN, elapsed_until, score
from tests.lifecycle import NAME, approvable, production
from tests.service.server import serving

SATURDAY_NOON = datetime(2026, 4, 4, 12, 0, tzinfo=UTC).timestamp()
MONDAY_10AM = datetime(2026, 4, 6, 10, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def worker(
    registry: ModelRegistry, redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> tuple[Worker, Clock]:
    """The retrain worker with roll-out on weekdays 09:00-15:59 UTC, on a clock the test moves
    (its schedule's slots marked handled: this test is about the roll-out alone)."""
    clock = Clock(SATURDAY_NOON)
    settings = load_settings(
        RetrainSettings,
        redis_url=redis_url,
        runs_dir=str(tmp_path / "runs"),
        artifact_dir=str(tmp_path / "artifacts"),
        rollout_window="* 9-15 * * 1-5",
    )
    metrics = RetrainMetrics(CollectorRegistry())
    runner = Runner(settings, client=redis_client, store=None, metrics=metrics, clock=clock)
    redis_client.set(SCHEDULE_KEY, repr(latest_slot(settings.schedule, MONDAY_10AM)))
    rollout = Rollout(
        registry,
        metrics,
        name=NAME,
        window=settings.rollout_window,
        clock=clock,
        actor="retrain-worker@test",
    )
    return (
        Worker(
            runner,
            RunStore(redis_client),
            schedule=settings.schedule,
            health_ttl_s=30,
            clock=clock,
            rollout=rollout,
        ),
        clock,
    )


def test_an_approval_through_the_admin_api_is_rolled_out_in_the_window_and_served(
    registry: ModelRegistry,
    worker: tuple[Worker, Clock],
    make_scorer_settings: Callable[..., ServiceSettings],
    time_bound: Callable[[float], float],
) -> None:
    production(registry, "v1")
    approvable(registry, "v2", bias=-1.0)
    service, clock = worker
    with serving(create_app(make_scorer_settings(reconcile_interval_s=1.0), registry)) as client:
        assert elapsed_until(lambda: client.get("/readyz").status_code == 200, 20) is not None
        approval = {"actor": "ana", "reason": "beats v1 on 3 weeks of shadow traffic"}
        answer = client.post("/admin/models/v2/approve", json=approval, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        assert answer.json()["message"] == "fraud:v2 is approved"

        assert service.drain() == []  # Saturday: outside the window, nothing to run
        assert service.last["rollout"] == (
            "fraud:v2 waits for the deployment window '* 9-15 * * 1-5' "
            "(opens 2026-04-06T09:00:00+00:00)"
        )
        assert registry.deployment(NAME).production == "v1"
        assert score(client)["model_version"] == "v1"

        clock.now = MONDAY_10AM
        service.drain()
        moved = time.monotonic()
        assert service.last["rollout"].startswith("promoted fraud:v2: ")
        served = elapsed_until(lambda: score(client)["model_version"] == "v2", 30)
        assert served is not None
        took = time.monotonic() - moved
        assert took <= time_bound(2.0), f"served {took:.2f} s after the worker's move"
        assert {score(client, f"t{i}", i)["model_version"] for i in range(5)} == {"v2"}
    print(f"\nroll-out: the scorer served v2 {took * 1000:.0f} ms after the worker's promote")
    audit = registry.audit(NAME)
    [approved] = [e for e in audit if e.action == "approve" and e.version == "v2"]
    [promoted] = [e for e in audit if e.action == "promote" and e.version == "v2"]
    assert (approved.actor, approved.reason) == ("ana", approval["reason"])
    assert promoted.actor == "retrain-worker@test"
    assert promoted.reason == (
        f"roll-out of the approval audit seq {approved.seq} at {approved.at.isoformat()} by ana, "
        "inside the deployment window '* 9-15 * * 1-5'"
    )
    assert registry.verify_audit(NAME).ok
