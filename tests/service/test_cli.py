"""``shadowline serve``: bad settings are one error line; the real command serves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from registry import ModelRegistry
from shadowline.cli import app
from shadowline.stack import free_port
from tests.service.conftest import make_production, wait_until


def test_bad_settings_are_one_error_line(in_tmp_cwd: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--port", "0"])
    assert result.exit_code == 2
    assert result.output.startswith("error: invalid settings for ServiceSettings:\n")
    assert "SHADOWLINE_PORT=0: Input should be greater than or equal to 1" in result.output
    assert "Traceback" not in result.output


def test_serve_runs_the_scorer(
    registry: ModelRegistry, redis_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    make_production(registry, "v1")
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "SHADOWLINE_REDIS_URL": redis_url,
        "SHADOWLINE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "SHADOWLINE_ARTIFACT_DIR": str(tmp_path / "artifacts"),
        "SHADOWLINE_LOG_LEVEL": "warning",
    }
    command = [str(Path(sys.executable).parent / "shadowline"), "serve", "--port", str(port)]
    server = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.PIPE)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=2.0) as client:

            def ready() -> bool:
                try:
                    return client.get("/readyz").status_code == 200
                except httpx.TransportError:
                    return False

            assert wait_until(ready, timeout_s=30)
            assert client.get("/readyz").json()["production"]["version"] == "v1"
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert server.returncode in (0, -signal.SIGTERM), stderr.decode()[-2000:]
    assert b"Traceback" not in stderr, stderr.decode()[-2000:]


def test_the_worker_factory_builds_the_app_from_the_environment(
    in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.main import app_from_environment

    monkeypatch.setenv("SHADOWLINE_MODEL_NAME", "cards")
    monkeypatch.setenv("SHADOWLINE_ARTIFACT_DIR", str(in_tmp_cwd / "artifacts"))
    app = app_from_environment()  # nothing connects before start-up
    assert app.state.components.settings.model_name == "cards"
    assert "/admin/models/{version}/promote" in app.openapi()["paths"]
