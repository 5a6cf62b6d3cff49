"""The scheduled worker in drain mode, with a simulated clock, against a real Redis."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import redis
from prometheus_client import CollectorRegistry
from redis.backoff import NoBackoff
from redis.retry import Retry

from retrain.constants import HEALTH_KEY, SCHEDULE_KEY
from retrain.errors import DataError, ScheduleError
from retrain.metrics import RetrainMetrics, serve_metrics
from retrain.records import RunRecord, RunStore
from retrain.runner import Runner
from retrain.settings import RetrainSettings
from retrain.worker import Worker, check_health, latest_slot, next_slot

MONDAY_3AM = datetime(2026, 3, 30, 3, 0, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_slots_follow_the_cron_expression() -> None:
    assert latest_slot("0 3 * * 1", MONDAY_3AM) == MONDAY_3AM
    assert latest_slot("0 3 * * 1", MONDAY_3AM + 3600) == MONDAY_3AM
    assert latest_slot("0 3 * * 1", MONDAY_3AM - 1) == MONDAY_3AM - 7 * 86400
    assert next_slot("0 3 * * 1", MONDAY_3AM) == MONDAY_3AM + 7 * 86400
    with pytest.raises(ScheduleError) as caught:
        latest_slot("soon", MONDAY_3AM)
    assert str(caught.value) == "schedule 'soon' is not a cron expression"


@pytest.fixture
def broken_worker(
    make_runner: Callable[..., Runner],
    make_settings: Callable[..., RetrainSettings],
    redis_client: redis.Redis,
    tmp_path: Path,
) -> tuple[Worker, Runner, Clock]:
    """A worker whose data folder is empty, so every run fails fast at ingest."""
    (tmp_path / "empty").mkdir()
    clock = Clock(MONDAY_3AM + 60)
    runner = make_runner(make_settings(data_source=str(tmp_path / "empty")), clock=clock)
    worker = Worker(
        runner, RunStore(redis_client), schedule="0 3 * * 1", health_ttl_s=30, clock=clock
    )
    return worker, runner, clock


def test_drain_runs_each_due_slot_once_and_counts_failures(
    broken_worker: tuple[Worker, Runner, Clock], redis_client: redis.Redis, tmp_path: Path
) -> None:
    worker, runner, clock = broken_worker
    [result] = worker.drain()
    assert result.outcome == "failed"
    assert result.reason == f"step ingest: {tmp_path / 'empty'}: no .parquet or .csv files"
    assert runner.metrics.value("failed") == 1.0
    assert float(redis_client.get(SCHEDULE_KEY) or 0) == MONDAY_3AM
    record = RunStore(redis_client).get(result.run_id)
    assert record is not None
    assert record.trigger == "schedule 2026-03-30T03:00:00+00:00"
    assert record.as_of == "2026-03-30T03:00:00+00:00"
    assert worker.drain() == []  # the slot was handled, even though the run failed
    clock.now += 7 * 86400
    assert [r.outcome for r in worker.drain()] == ["failed"]
    assert runner.metrics.value("failed") == 2.0
    health = RunStore(redis_client).health()
    assert health is not None
    assert health["last_outcome"] == "failed"
    assert health["next_slot"] == MONDAY_3AM + 14 * 86400
    assert 0 < redis_client.ttl(HEALTH_KEY) <= 30


def test_serve_beats_until_stopped_and_then_reports_unhealthy(
    broken_worker: tuple[Worker, Runner, Clock], redis_client: redis.Redis
) -> None:
    worker, _, _ = broken_worker
    stop = threading.Event()
    thread = threading.Thread(target=worker.serve, args=(stop,))
    thread.start()
    try:
        for _ in range(200):  # wait (bounded) for the first beat
            if redis_client.exists(HEALTH_KEY):
                break
            stop.wait(0.05)
        healthy, line = check_health(RunStore(redis_client))
        assert healthy, line
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert check_health(RunStore(redis_client)) == (
        False,
        "no worker heartbeat (health key missing or expired)",
    )


def test_a_held_lock_skips_the_run_and_names_the_holder(
    make_runner: Callable[..., Runner], redis_client: redis.Redis
) -> None:
    runner = make_runner()
    assert RunStore(redis_client).acquire("r-other", 60) is None
    result = runner.run()
    assert (result.outcome, result.reason) == ("skipped", "run r-other is in progress")
    assert result.exit_code == 0


def test_health_check_when_redis_is_unreachable() -> None:
    client = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    healthy, line = check_health(RunStore(client))
    client.close()
    assert not healthy
    assert line.startswith("cannot read the health key: ConnectionError: ")


def test_metrics_are_served_over_http_with_the_alerted_name(
    broken_worker: tuple[Worker, Runner, Clock],
) -> None:
    worker, runner, _ = broken_worker
    worker.drain()
    server = serve_metrics(runner.metrics, 0, addr="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert 'shadowline_retrain_runs_total{outcome="failed"} 1.0' in text
    assert 'shadowline_retrain_runs_total{outcome="succeeded"} 0.0' in text
    assert 'shadowline_retrain_step_duration_seconds_count{step="ingest"} 1.0' in text
    assert "shadowline_retrain_last_success_timestamp_seconds 0.0" in text


class _WaitsForAHeartbeat:
    """A source that, mid-run, deletes the health key and waits (bounded) for it to return."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.came_back = False

    @property
    def description(self) -> str:
        return "waits for a heartbeat"

    def identity(self) -> str:
        return "heartbeat"

    def load(self, start: datetime, end: datetime) -> pd.DataFrame:
        self.client.delete(HEALTH_KEY)
        done = threading.Event()
        for _ in range(100):
            if self.client.exists(HEALTH_KEY):
                self.came_back = True
                break
            done.wait(0.05)
        raise DataError("stop here")


def test_the_worker_keeps_beating_while_a_run_is_in_progress(
    make_runner: Callable[..., Runner], redis_client: redis.Redis
) -> None:
    source = _WaitsForAHeartbeat(redis_client)
    clock = Clock(MONDAY_3AM)
    worker = Worker(
        make_runner(source=source, clock=clock),
        RunStore(redis_client),
        schedule="0 3 * * 1",
        health_ttl_s=1,
        clock=clock,
    )
    [result] = worker.drain()
    assert result.reason == "step ingest: stop here"
    assert source.came_back


def test_serve_survives_redis_being_down_and_logs_it(
    make_settings: Callable[..., RetrainSettings], caplog: pytest.LogCaptureFixture
) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    runner = Runner(
        make_settings(), client=dead, store=None, metrics=RetrainMetrics(CollectorRegistry())
    )
    worker = Worker(runner, RunStore(dead), schedule="0 3 * * 1", health_ttl_s=1)
    stop = threading.Event()
    thread = threading.Thread(target=worker.serve, args=(stop,))
    with caplog.at_level("WARNING", logger="retrain.worker"):
        thread.start()
        for _ in range(200):  # bounded wait for the first failed tick
            if caplog.records:
                break
            stop.wait(0.05)
        stop.set()
        thread.join(timeout=30)
    dead.close()
    assert not thread.is_alive()
    assert (
        caplog.records[0]
        .getMessage()
        .startswith("retrain worker: Redis unavailable: ConnectionError: ")
    )


def test_a_restarted_worker_reports_its_last_success_from_the_stored_runs(
    broken_worker: tuple[Worker, Runner, Clock], redis_client: redis.Redis
) -> None:
    worker, runner, clock = broken_worker
    gauge = "shadowline_retrain_last_success_timestamp_seconds"
    assert runner.metrics.registry.get_sample_value(gauge) == 0.0  # nothing stored yet
    store = RunStore(redis_client)
    good = RunRecord(
        run_id="r-good",
        model_name="fraud",
        started_at=MONDAY_3AM - 7 * 86400,
        as_of="as-of",
        trigger="schedule",
        outcome="succeeded",
        finished_at=MONDAY_3AM - 7 * 86400 + 600,
    )
    store.save(good)
    worker.drain()  # a newer run that fails does not count as a success
    restarted = Worker(runner, store, schedule="0 3 * * 1", health_ttl_s=30, clock=clock)
    assert restarted.runner.metrics.registry.get_sample_value(gauge) == good.finished_at
