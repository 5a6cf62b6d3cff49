"""The worker's roll-out of approved versions, in drain mode, against a real Redis registry."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry
from redis.backoff import NoBackoff
from redis.retry import Retry

from registry import FileArtifactStore, ModelRegistry, State
from registry.config import SettingsError, load_settings
from retrain.errors import ScheduleError
from retrain.metrics import RetrainMetrics
from retrain.records import RunStore
from retrain.rollout import Rollout, in_window, window_opens
from retrain.runner import Runner
from retrain.settings import RetrainSettings
from retrain.worker import Worker
from tests.clocks import Clock
from tests.lifecycle import NAME, approvable, production, register

MONDAY_10AM = datetime(2026, 3, 30, 10, 0, tzinfo=UTC).timestamp()
SATURDAY_10AM = datetime(2026, 4, 4, 10, 0, tzinfo=UTC).timestamp()
WEEKDAYS = "* 9-15 * * 1-5"


def rollout(
    registry: ModelRegistry,
    *,
    window: str = "",
    allow_forced: bool = False,
    clock: Callable[[], float] = time.time,
) -> Rollout:
    """A roll-out of ``fraud`` acting as retrain-worker@test, with metrics of its own."""
    return Rollout(
        registry,
        RetrainMetrics(CollectorRegistry()),
        name=NAME,
        window=window,
        allow_forced=allow_forced,
        actor="retrain-worker@test",
        clock=clock,
    )


def metric(roll: Rollout, name: str) -> float | None:
    return roll.metrics.registry.get_sample_value(name)


def test_the_newest_approval_is_promoted_with_an_audit_entry_naming_the_worker_and_approval(
    model_registry: ModelRegistry,
) -> None:
    production(model_registry, "v1")
    approvable(model_registry, "v2", bias=-2.1)
    approvable(model_registry, "v3", bias=-2.2)
    roll = rollout(model_registry)
    assert roll.step().message == "nothing to roll out: no approved version"
    model_registry.approve(NAME, "v3", actor="ana", reason="better recall")
    model_registry.approve(NAME, "v2", actor="ben", reason="also fine")  # approved last: newest
    decision = roll.step()
    assert (decision.outcome, decision.version) == ("promoted", "v2")
    approval = model_registry.stamps(NAME, "v2").approved
    assert approval is not None
    promoted = model_registry.audit(NAME)[-1]
    assert (promoted.actor, promoted.action, promoted.version) == (
        "retrain-worker@test",
        "promote",
        "v2",
    )
    assert promoted.reason == (
        f"roll-out of the approval audit seq {approval.seq} at {approval.at.isoformat()} "
        "by ben, at once"
    )
    assert decision.message == f"promoted fraud:v2: {promoted.reason}"
    assert metric(roll, "shadowline_retrain_rollouts_total") == 1.0
    # v3's approval is older than v2's promotion: the worker leaves it to a person.
    again = roll.step()
    assert again.outcome == "nothing"
    assert again.message == (
        f"nothing to roll out: v3: approved at audit seq {approval.seq - 1}, before production "
        f"v2 (seq {promoted.seq}); promote by hand"
    )
    assert model_registry.state(NAME, "v3") is State.APPROVED


def test_a_forced_approval_waits_for_a_person_unless_allowed(
    model_registry: ModelRegistry,
) -> None:
    production(model_registry, "v1")
    register(model_registry, "v2", bias=-2.1)
    model_registry.approve(NAME, "v2", actor="ana", reason="no evidence yet", force=True)
    decision = rollout(model_registry).step()
    assert decision.message == (
        "nothing to roll out: v2: approval forced past the policy "
        "(SHADOWLINE_ROLLOUT_FORCED is off); promote by hand"
    )
    assert model_registry.deployment(NAME).production == "v1"
    assert rollout(model_registry, allow_forced=True).step().outcome == "promoted"
    assert model_registry.deployment(NAME).production == "v2"


def test_outside_the_window_it_waits_and_inside_it_promotes(
    model_registry: ModelRegistry,
) -> None:
    production(model_registry, "v1")
    approvable(model_registry, "v2", bias=-2.1)
    model_registry.approve(NAME, "v2", actor="ana", reason="better")
    clock = Clock(SATURDAY_10AM)
    roll = rollout(model_registry, window=WEEKDAYS, clock=clock)
    waiting = roll.step()
    assert waiting.outcome == "waiting"
    assert waiting.message == (
        "fraud:v2 waits for the deployment window '* 9-15 * * 1-5' "
        "(opens 2026-04-06T09:00:00+00:00)"
    )
    assert metric(roll, "shadowline_retrain_rollout_waiting") == 1.0
    assert model_registry.deployment(NAME).production == "v1"
    clock.now = datetime(2026, 4, 6, 9, 0, 30, tzinfo=UTC).timestamp()
    promoted = roll.step()
    assert promoted.outcome == "promoted"
    assert model_registry.audit(NAME)[-1].reason.endswith(
        "inside the deployment window '* 9-15 * * 1-5'"
    )
    assert metric(roll, "shadowline_retrain_rollout_waiting") == 0.0


def test_window_arithmetic() -> None:
    assert in_window("", SATURDAY_10AM)
    assert in_window(WEEKDAYS, MONDAY_10AM)
    assert not in_window(WEEKDAYS, MONDAY_10AM + 6 * 3600)  # 16:00
    assert window_opens(WEEKDAYS, MONDAY_10AM + 6 * 3600) == datetime(2026, 3, 31, 9, 0, tzinfo=UTC)
    with pytest.raises(ScheduleError) as caught:
        in_window("office hours", MONDAY_10AM)
    assert str(caught.value) == "deployment window 'office hours' is not a cron expression"


def test_after_a_guard_rollback_nothing_older_is_pushed_and_the_pulled_version_stays_out(
    model_registry: ModelRegistry,
) -> None:
    production(model_registry, "v1")
    approvable(model_registry, "v2", bias=-2.1)
    approvable(model_registry, "v3", bias=-2.2)
    model_registry.approve(NAME, "v3", actor="ana", reason="good")
    model_registry.approve(NAME, "v2", actor="ana", reason="better")
    roll = rollout(model_registry)
    assert roll.step().version == "v2"
    model_registry.rollback(NAME, actor="guard@scorer-1", expected="v2", guard=True)
    decision = roll.step()
    assert decision.outcome == "nothing"
    assert "v3: approved at audit seq" in decision.message
    assert model_registry.deployment(NAME).production == "v1"
    assert model_registry.stamps(NAME, "v2").rolled_back_by_guard
    # A fresh approval after the rollback is rolled out again.
    approvable(model_registry, "v4", bias=-2.3)
    model_registry.approve(NAME, "v4", actor="ana", reason="fixed")
    assert roll.step().version == "v4"


def test_an_approval_before_stamps_existed_is_left_to_a_person(
    model_registry: ModelRegistry, redis_client: redis.Redis
) -> None:
    production(model_registry, "v1")
    approvable(model_registry, "v2", bias=-2.1)
    model_registry.approve(NAME, "v2", actor="ana", reason="good")
    # What a registry written by an older Shadowline holds: no stamp fields.
    redis_client.hdel(f"shadowline:model:{NAME}:v2", "approved_seq", "approved_at")
    assert rollout(model_registry).step().message == (
        "nothing to roll out: v2: approved before roll-out stamps; promote by hand"
    )


def test_two_workers_racing_promote_once(model_registry: ModelRegistry) -> None:
    production(model_registry, "v1")
    approvable(model_registry, "v2", bias=-2.1)
    model_registry.approve(NAME, "v2", actor="ana", reason="good")
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def check() -> None:
        start.wait()
        outcomes.append(rollout(model_registry).step().outcome)

    threads = [threading.Thread(target=check) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes.count("promoted") == 1
    assert set(outcomes) <= {"promoted", "lost", "nothing"}
    promotes = [
        e for e in model_registry.audit(NAME) if e.action == "promote" and e.version == "v2"
    ]
    assert len(promotes) == 1


def test_the_worker_rolls_out_in_drain_mode_and_reports_slots(
    make_runner: Callable[..., Runner],
    model_registry: ModelRegistry,
    redis_client: redis.Redis,
) -> None:
    production(model_registry, "v1")
    approvable(model_registry, "v2", bias=-2.1)
    model_registry.approve(NAME, "v2", actor="ana", reason="good")
    clock = Clock(MONDAY_10AM)
    runner = make_runner(clock=clock)
    redis_client.set("shadowline:retrain:schedule:last", repr(MONDAY_10AM - 7 * 3600))
    worker = Worker(
        runner,
        RunStore(redis_client),
        schedule="0 3 * * 1",
        health_ttl_s=30,
        clock=clock,
        rollout=rollout(model_registry, clock=clock),
    )
    assert worker.roll_out() is not None
    assert model_registry.deployment(NAME).production == "v2"
    worker.beat()
    health = RunStore(redis_client).health()
    assert health is not None
    assert health["rollout"].startswith("promoted fraud:v2: roll-out")
    values = runner.metrics.registry.get_sample_value
    monday_3am = MONDAY_10AM - 7 * 3600
    assert values("shadowline_retrain_due_slot_timestamp_seconds") == monday_3am
    assert values("shadowline_retrain_handled_slot_timestamp_seconds") == monday_3am
    assert worker.drain() == []  # the slot was handled: nothing to run
    assert worker.last["rollout"].startswith("nothing to roll out")
    clock.now += 7 * 86400
    assert values("shadowline_retrain_due_slot_timestamp_seconds") == monday_3am + 7 * 86400


def test_serve_rolls_out_on_its_own_thread(
    make_runner: Callable[..., Runner], model_registry: ModelRegistry, redis_client: redis.Redis
) -> None:
    production(model_registry, "v1")
    approvable(model_registry, "v2", bias=-2.1)
    redis_client.set("shadowline:retrain:schedule:last", repr(MONDAY_10AM))  # nothing due
    worker = Worker(
        make_runner(),
        RunStore(redis_client),
        schedule="0 3 * * 1",
        health_ttl_s=30,
        rollout=rollout(model_registry),
        rollout_interval_s=0.1,
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.serve, args=(stop,))
    thread.start()
    try:
        model_registry.approve(NAME, "v2", actor="ana", reason="good")
        for _ in range(300):  # bounded: up to 30 s on a busy machine
            if model_registry.deployment(NAME).production == "v2":
                break
            stop.wait(0.1)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert model_registry.deployment(NAME).production == "v2"


def test_a_bad_window_setting_is_refused_naming_it(redis_url: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(RetrainSettings, redis_url=redis_url, rollout_window="weekdays")
    assert str(caught.value) == (
        "invalid settings for RetrainSettings:\n"
        "  SHADOWLINE_ROLLOUT_WINDOW='weekdays': Value error, 'weekdays' is not a cron "
        "expression over minutes (e.g. '* 9-15 * * 1-5' for weekdays 09:00-15:59 UTC; "
        "empty: any time)"
    )


def test_serve_logs_a_failed_roll_out_check_and_checks_again(
    make_runner: Callable[..., Runner],
    redis_client: redis.Redis,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    unreachable = redis.Redis(
        host="127.0.0.1", port=1, decode_responses=True, retry=Retry(NoBackoff(), 0)
    )
    dead = ModelRegistry(unreachable, FileArtifactStore(tmp_path / "artifacts"))
    redis_client.set("shadowline:retrain:schedule:last", repr(4e9))  # nothing due
    worker = Worker(
        make_runner(),
        RunStore(redis_client),
        schedule="0 3 * * 1",
        health_ttl_s=30,
        rollout=rollout(dead),
        rollout_interval_s=0.05,
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.serve, args=(stop,))
    with caplog.at_level("WARNING", logger="retrain.worker"):
        thread.start()
        for _ in range(400):  # bounded: until two checks failed
            if len(caplog.records) >= 2:
                break
            stop.wait(0.05)
        stop.set()
        thread.join(30)
    unreachable.close()
    assert not thread.is_alive()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) >= 2
    assert all(m.startswith("roll-out check failed: ConnectionError: ") for m in messages)
