"""The whole alerting chain, real at every step: a scorer's rollback guard pulls a bad model
under load, a real Prometheus (deploy/prometheus/, rules unchanged) scraping that scorer fires
ShadowlineGuardRolledBack, and a real Alertmanager (deploy/alertmanager/alertmanager.yml,
receivers pointed here) delivers it to a webhook receiver in this test."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from registry import ModelRegistry
from service.settings import ServiceSettings
from shadowline.stack import free_port
from tests.deploy import prometheus
from tests.deploy.helpers import elapsed_until, loaded_scorer, promote
from tests.lifecycle import NAME, production, register

ALERTMANAGER = prometheus.ROOT / "deploy/alertmanager/alertmanager.yml"


class Receiver:
    """A webhook receiver on 127.0.0.1: every POSTed notification, with the path it came to."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test reads what arrived, not the access log

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def alerts(self, path: str) -> list[dict[str, Any]]:
        """Every alert delivered to ``path`` (firing or resolved)."""
        return [alert for at, body in list(self.received) if at == path for alert in body["alerts"]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def alertmanager_config(receiver: Receiver) -> dict[str, Any]:
    """deploy/alertmanager/alertmanager.yml with its webhooks sent to ``receiver`` (same
    paths) and no waiting before a first notification."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER.read_text())
    config["route"].update(group_wait="0s", group_interval="1s")
    for entry in config["receivers"]:
        for hook in entry["webhook_configs"]:
            hook["url"] = receiver.url + "/" + hook["url"].split("/", 3)[3]
    return config


def test_amtool_accepts_the_alertmanager_config() -> None:
    result = prometheus.amtool("check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_guard_rollback_reaches_the_ticket_webhook_through_prometheus_and_alertmanager(
    registry: ModelRegistry,
    make_scorer_settings: Callable[..., ServiceSettings],
    retrain_endpoint: str,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    production(registry, "v1")
    register(registry, "v2", bias=8.0)  # blocks every payment
    settings = make_scorer_settings(
        guard_min_requests=100, guard_interval_s=0.2, guard_probation_s=60.0
    )
    with (
        loaded_scorer(registry, settings) as (client, _, _load),
        prometheus.alertmanager(alertmanager_config(receiver), tmp_path / "am") as am_url,
    ):
        scorer = str(client.base_url).removeprefix("http://").rstrip("/")
        targets = {"shadowline-scorer": scorer, "shadowline-retrain": retrain_endpoint}
        am = am_url.removeprefix("http://")
        # The archiver plays no part in this alert.
        config = prometheus.deploy_config(targets, alertmanager=am, skip=("shadowline-archiver",))
        with prometheus.running(config, tmp_path / "prometheus") as url:
            # The rollback counter must be scraped at 0 before it moves: an increase needs two.
            assert elapsed_until(
                lambda: prometheus.query(url, "shadowline_guard_rollbacks_total")["data"]["result"],
                30,
            )
            promote(client, "v2")
            assert elapsed_until(lambda: registry.deployment(NAME).production == "v1", 30)
            delivered = elapsed_until(lambda: bool(receiver.alerts("/ticket")), 60)
    assert delivered is not None, f"nothing delivered; received {receiver.received}"
    [alert] = [a for a in receiver.alerts("/ticket") if a["status"] == "firing"][:1]
    assert alert["labels"]["alertname"] == "ShadowlineGuardRolledBack"
    assert alert["labels"]["rule"] == "block_rate"
    assert alert["labels"]["severity"] == "ticket"
    assert alert["annotations"]["runbook"] == "docs/operations.md#shadowlineguardrolledback"
    assert receiver.alerts("/page") == []  # nothing else was wrong


def test_compose_runs_alertmanager_with_the_deploy_config_where_prometheus_sends() -> None:
    compose = yaml.safe_load((prometheus.ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["alertmanager"]
    mounts = dict(volume.split(":")[:2] for volume in service["volumes"])
    assert mounts["./deploy/alertmanager/alertmanager.yml"] == "/etc/alertmanager/alertmanager.yml"
    config = yaml.safe_load((prometheus.PROMETHEUS_DIR / "prometheus.yml").read_text())
    [sender] = config["alerting"]["alertmanagers"]
    assert sender["static_configs"] == [{"targets": ["alertmanager:9093"]}]
    assert "9093:9093" in service["ports"]
