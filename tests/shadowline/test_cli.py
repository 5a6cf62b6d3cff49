"""The `shadowline` command's human output and its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from registry.config import SharedSettings, load_settings
from registry.connections import redis_client
from shadowline.cli import app

runner = CliRunner()


def test_bad_setting_stops_every_stack_command_with_exit_2(
    in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHADOWLINE_KAFKA_PORT", "-1")
    for command in ("up", "status", "down"):
        result = runner.invoke(app, ["stack", command])
        assert result.exit_code == 2, command
        assert "SHADOWLINE_KAFKA_PORT='-1': Input should be greater than or equal to 0" in (
            result.output
        )


def test_recorded_addresses_are_what_settings_connect_to(in_tmp_cwd: Path) -> None:
    try:
        up = runner.invoke(app, ["stack", "up"])
        assert up.exit_code == 0, up.output
        assert "addresses recorded in .shadowline/stack.env" in up.output
        status = runner.invoke(app, ["stack", "status"])
        assert status.output.count("healthy") == 2
        settings = load_settings(SharedSettings)
        client = redis_client(settings)
        assert client.ping() is True
        client.close()
    finally:
        down = runner.invoke(app, ["stack", "down"])
    assert down.output.strip() == "stopped: redis, kafka"
    assert runner.invoke(app, ["stack", "down"]).output.strip() == "nothing was running"


def test_configured_busy_port_is_a_clear_error(
    in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    busy = redis_url.rsplit(":", 1)[1].split("/")[0]
    monkeypatch.setenv("SHADOWLINE_REDIS_PORT", busy)
    result = runner.invoke(app, ["stack", "up"])
    assert result.exit_code == 1
    assert f"error: redis port {busy} on 127.0.0.1 is already in use" in result.output
