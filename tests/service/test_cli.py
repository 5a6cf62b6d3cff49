"""``shadowline serve``: bad settings are one error line; the real command serves."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from registry import ModelRegistry
from shadowline.cli import app
from shadowline.stack import free_port
from tests.service.helpers import make_production, wait_until


def test_bad_settings_are_one_error_line(in_tmp_cwd: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--port", "0"])
    assert result.exit_code == 2
    assert result.output.startswith("error: invalid settings for ServiceSettings: ")
    assert result.output.count("\n") == 1  # one line, like every command's error
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


@pytest.mark.parametrize("where", ["port-in-use", "unknown-host"])
def test_serve_exits_promptly_when_it_cannot_bind(tmp_path: Path, where: str) -> None:
    # Neither Redis nor a broker listens: the Kafka producer process never connects, and it
    # used to keep the failed server from exiting at all.
    env = {
        "PATH": os.environ["PATH"],
        "SHADOWLINE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "SHADOWLINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "SHADOWLINE_ARTIFACT_DIR": str(tmp_path / "artifacts"),
        "SHADOWLINE_LOG_LEVEL": "warning",
    }
    command = [str(Path(sys.executable).parent / "shadowline"), "serve"]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        if where == "port-in-use":
            host, port = "127.0.0.1", busy.getsockname()[1]
            reason = "address already in use"
        else:
            host, port = "999.1.1.1", free_port()
            reason = "Name or service not known"
        command += ["--host", host, "--port", str(port)]
        # A generous bound on the wait; it used to hang forever.
        result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, timeout=60)
    stderr = result.stderr.decode()
    assert result.returncode == 3, stderr[-2000:]
    assert reason in stderr
    assert stderr.rstrip().endswith(
        f"error: the scorer could not start on {host}:{port} (see the log above)"
    )
    assert "Traceback" not in stderr


def test_serve_warns_that_several_workers_split_the_metrics(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "SHADOWLINE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "SHADOWLINE_ARTIFACT_DIR": str(tmp_path / "artifacts"),
        "SHADOWLINE_WORKERS": "2",
    }
    command = [str(Path(sys.executable).parent / "shadowline"), "serve", "--host", "127.0.0.1"]
    with socket.socket() as busy:  # a port in use: the command ends right after the warning
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        command += ["--port", str(busy.getsockname()[1])]
        result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, timeout=60)
    assert result.returncode == 3
    assert result.stderr.decode().startswith(
        "warning: SHADOWLINE_WORKERS=2: each worker has its own models, metrics and rollback "
        "guard, and a scrape of /metrics reaches one of them; run one worker per process and "
        "add replicas behind the load balancer (docs/operations.md)\n"
    )
