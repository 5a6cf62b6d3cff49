"""`shadowline retrain ...` as an operator uses it: exit codes, one-line errors, the worker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
from typer.testing import CliRunner

from registry import FileArtifactStore, ModelRegistry
from retrain.constants import HEALTH_KEY, SCHEDULE_KEY
from shadowline.cli import app
from tests.lifecycle import approvable, production
from tests.retrain.helpers import SMALL

cli = CliRunner()


@pytest.fixture
def env(in_tmp_cwd: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Small settings through SHADOWLINE_* variables, as a deployment would set them."""
    values: dict[str, Any] = {**SMALL, "redis_url": redis_url}
    for key, value in values.items():
        text = value.isoformat() if hasattr(value, "isoformat") else str(value)
        monkeypatch.setenv(f"SHADOWLINE_{key.upper()}", text)
    return in_tmp_cwd


def test_run_then_rerun_reports_success_then_skip(env: Path, redis_client: redis.Redis) -> None:
    first = cli.invoke(app, ["retrain", "run", "--json"])
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert data["outcome"] == "succeeded"
    assert data["reason"] == f"fraud:{data['run_id']} in shadow at rate 1"
    assert [s["status"] for s in data["steps"]] == ["ran"] * 12
    second = cli.invoke(app, ["retrain", "run"])
    assert second.exit_code == 0, second.output
    assert second.stdout.startswith(f"skipped: identical to run {data['run_id']}: same data")
    listed = cli.invoke(app, ["retrain", "runs"])
    lines = listed.stdout.splitlines()
    assert lines[1].startswith(f"{data['run_id']}  succeeded 12 steps  fraud:{data['run_id']}")
    assert " skipped    1 steps  identical to run " in lines[0]


def test_a_corrupt_file_fails_with_one_line_and_exit_1(
    env: Path, monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis
) -> None:
    data = env / "export"
    data.mkdir()
    (data / "week-09.parquet").write_bytes(b"not parquet at all")
    monkeypatch.setenv("SHADOWLINE_DATA_SOURCE", str(data))
    result = cli.invoke(app, ["retrain", "run"])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: run r")
    assert lines[0].endswith(
        "failed: step ingest: week-09.parquet: cannot be read as Parquet: Could not open "
        f"Parquet input source '{data}/week-09.parquet': Parquet magic bytes not found in "
        "footer. Either the file is corrupted or this is not a parquet file."
    )
    assert "Traceback" not in result.output


def test_bad_settings_exit_2_naming_the_variable(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHADOWLINE_SCHEDULE", "every monday")
    result = cli.invoke(app, ["retrain", "run"])
    assert result.exit_code == 2
    assert "SHADOWLINE_SCHEDULE='every monday': Value error, 'every monday' is not a cron " in (
        result.stderr
    )


def test_an_as_of_time_outside_the_data_range_is_one_clear_line(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = cli.invoke(app, ["retrain", "run", "--as-of", "1900-01-01"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: as-of time 1900-01-01T00:00:00+00:00 is outside the supported range "
        "2000-01-01 .. 2200-01-01"
    )
    monkeypatch.setenv("SHADOWLINE_AS_OF", "9999-12-31")
    result = cli.invoke(app, ["retrain", "run"])
    assert result.exit_code == 2
    assert "SHADOWLINE_AS_OF='9999-12-31': Value error, as-of time 9999-12-31T00:00:00+00:00" in (
        result.stderr
    )


def test_worker_once_runs_the_due_slot_once_and_check_reads_the_health_key(
    env: Path, redis_client: redis.Redis
) -> None:
    check = cli.invoke(app, ["retrain", "worker", "--check"])
    assert check.exit_code == 1
    assert check.stdout.strip() == "no worker heartbeat (health key missing or expired)"
    once = cli.invoke(app, ["retrain", "worker", "--once"])
    assert once.exit_code == 0, once.output
    assert once.stdout.startswith("succeeded: fraud:r")
    assert 0 < redis_client.ttl(HEALTH_KEY) <= 120
    check = cli.invoke(app, ["retrain", "worker", "--check"])
    assert check.exit_code == 0
    assert check.stdout.startswith("worker idle, last beat ")
    again = cli.invoke(app, ["retrain", "worker", "--once"])
    assert again.stdout.splitlines() == [
        "nothing due",
        "roll-out: nothing to roll out: no approved version",
    ]


def test_step_reruns_one_step_of_a_run(env: Path, redis_client: redis.Redis) -> None:
    first = cli.invoke(app, ["retrain", "run", "--until", "features", "--json"])
    run_id = json.loads(first.stdout)["run_id"]
    result = cli.invoke(app, ["retrain", "step", "features", "--run", run_id])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("features: ran in ")
    missing = cli.invoke(app, ["retrain", "step", "train", "--run", run_id])
    assert missing.exit_code == 1
    assert missing.stderr.strip() == "error: step 'train' needs the output of 'sets'; run it first"
    unknown = cli.invoke(app, ["retrain", "step", "features", "--run", "r-nope"])
    assert unknown.stderr.strip() == (
        "error: no run r-nope in .shadowline/runs (no .shadowline/runs/r-nope/run.json)"
    )


def test_unreachable_redis_is_one_clear_line(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOWLINE_REDIS_URL", "redis://127.0.0.1:1/0")
    result = cli.invoke(app, ["retrain", "run"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot use Redis: ConnectionError: ")
    assert len(result.stderr.splitlines()) == 1
    check = cli.invoke(app, ["retrain", "worker", "--check"])
    assert check.exit_code == 1
    assert check.stdout.startswith("cannot read the health key: ConnectionError: ")


def test_worker_once_rolls_out_an_approval_unless_roll_out_is_off(
    env: Path, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_client.set(SCHEDULE_KEY, repr(4e9))  # every slot handled: only the roll-out acts
    registry = ModelRegistry(redis_client, FileArtifactStore(env / ".shadowline/artifacts"))
    production(registry, "v1")
    approvable(registry, "v2", bias=-1.0)
    registry.approve("fraud", "v2", actor="ana", reason="better")
    monkeypatch.setenv("SHADOWLINE_ROLLOUT", "false")
    off = cli.invoke(app, ["retrain", "worker", "--once"])
    assert off.stdout.splitlines() == ["nothing due"]
    assert registry.deployment("fraud").production == "v1"
    monkeypatch.delenv("SHADOWLINE_ROLLOUT")
    on = cli.invoke(app, ["retrain", "worker", "--once"])
    nothing_due, rolled = on.stdout.splitlines()
    assert nothing_due == "nothing due"
    assert rolled.startswith("roll-out: promoted fraud:v2: roll-out of the approval audit seq ")
    assert registry.deployment("fraud").production == "v2"
