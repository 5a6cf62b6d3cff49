"""The deploy/ Prometheus files and the dashboard's queries, run by a real Prometheus.

A real scorer (production model and one shadow, real Redis and broker) and a real retrain
worker's metrics endpoint are scraped every second by Prometheus started with
deploy/prometheus/prometheus.yml (its targets pointed at them) and the alert rules; every query
of the committed dashboard is then sent to it with Grafana's macros replaced.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from prometheus_client import CollectorRegistry, start_http_server

from registry import FileArtifactStore, ModelRegistry, load_settings
from retrain.evidence.archive_metrics import ArchiveMetrics
from service.app import create_app
from service.settings import ServiceSettings
from tests.deploy import prometheus
from tests.factories import random_rows
from tests.service.helpers import make_production, register, wait_until
from tests.service.server import serving

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = prometheus.PROMETHEUS_DIR
BOARD = ROOT / "deploy/grafana/dashboards/shadowline.json"
# What Grafana would put in place of its macros at a 1 s scrape interval.
MACROS = {"$__rate_interval": "5s", "$__interval": "1s", "$__range": "1m"}
# Panels that must show data for a scorer under traffic: by title, the queries (all, or
# these indexes) that must each return a value above zero.  No 5xx happens, so the 5xx share
# (query 1 of the errors panel) is zero; failed and dropped records are zero.
CORE: dict[str, tuple[int, ...] | None] = {
    "Request rate by route and status": None,
    "Request latency p50 / p99": None,
    "Client and server errors": (0,),
    "Score quantiles by model": None,
    "Decisions by model": None,
    "Inference latency p50 / p99": None,
    "Kafka deliveries": (0, 1),
    "Loaded models": None,
    "Scorers up": None,
    "Registry reachable": None,
    "Worker up": None,
    "Since the last successful run": None,
    "Evidence age by shadow version": None,
    "Primary difference with its 95% interval": None,
    "Matured frauds behind the evidence": None,
}
ROWS = random_rows(n=16, seed=11)


def queries() -> dict[str, list[str]]:
    """Each panel's expressions, by title, with the macros replaced."""
    board = json.loads(BOARD.read_text())
    result: dict[str, list[str]] = {}
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        exprs = []
        for target in panel["targets"]:
            expr = target["expr"]
            for macro, value in MACROS.items():
                expr = expr.replace(macro, value)
            assert "$" not in expr, f"{panel['title']}: a macro is left in {expr}"
            exprs.append(expr)
        result[panel["title"]] = exprs
    return result


def test_promtool_accepts_the_alert_rules() -> None:
    result = prometheus.promtool("check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(prometheus.alert_rules())} rules found" in result.stdout


def test_promtool_accepts_the_config_with_its_mounted_rules(tmp_path: Path) -> None:
    syntax = prometheus.promtool(
        "check", "config", "--syntax-only", str(PROMETHEUS_DIR / "prometheus.yml")
    )
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["rule_files"] = [str(prometheus.compose_mounts()[path]) for path in config["rule_files"]]
    resolved = tmp_path / "prometheus.yml"
    resolved.write_text(yaml.safe_dump(config))
    full = prometheus.promtool("check", "config", str(resolved))
    assert full.returncode == 0, full.stdout + full.stderr
    assert f"SUCCESS: {len(prometheus.alert_rules())} rules found" in full.stdout


class Traffic:
    """A thread scoring valid transactions (and every tenth one invalid) until stopped."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self.answers: dict[int, int] = {}

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            features: dict[str, Any] = dict(ROWS[n % len(ROWS)])
            if n % 10 == 0:
                features["amount"] = "lots"  # a client's mistake: 422
            response = self._client.post(
                "/v1/score", json={"transaction_id": f"tx-{n}", "features": features}
            )
            self.answers[response.status_code] = self.answers.get(response.status_code, 0) + 1
            n += 1
            time.sleep(0.02)


@pytest.fixture
def archiver_endpoint() -> Iterator[str]:
    """The topic archiver's metrics endpoint, as ``shadowline archive`` serves it."""
    metrics = ArchiveMetrics(CollectorRegistry(), ("shadowline.scores", "shadowline.labels"))
    server, _ = start_http_server(0, addr="127.0.0.1", registry=metrics.registry)
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def scorer_settings(
    redis_url: str, kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path
) -> ServiceSettings:
    return load_settings(
        ServiceSettings,
        redis_url=redis_url,
        kafka_bootstrap=kafka_bootstrap,
        scores_topic=make_topic("scores"),
        artifact_dir=str(tmp_path / "artifacts"),
        model_cache_dir=str(tmp_path / "model-cache"),
        admin_token="test-admin-token",
        reconcile_interval_s=0.5,
        sidecar_process=False,
        shadow_batch_wait_ms=1.0,
    )


def values(answer: dict[str, Any]) -> list[float]:
    return [float(sample["value"][1]) for sample in answer["data"]["result"]]


def test_every_dashboard_query_runs_on_a_real_prometheus(
    redis_client: redis.Redis,
    scorer_settings: ServiceSettings,
    retrain_endpoint: str,
    archiver_endpoint: str,
    tmp_path: Path,
) -> None:
    registry = ModelRegistry(redis_client, FileArtifactStore(tmp_path / "artifacts"))
    make_production(registry, "v1")
    register(registry, "v2", bias=0.5)
    registry.shadow("fraud", "v2", rate=1.0, actor="test")
    panels = queries()
    assert set(CORE) <= set(panels), sorted(set(CORE) - set(panels))
    with serving(create_app(scorer_settings, registry)) as client, Traffic(client) as traffic:
        assert wait_until(lambda: client.get("/readyz").json()["shadows"] != [])
        scorer = str(client.base_url).removeprefix("http://").rstrip("/")
        targets = {
            "shadowline-scorer": scorer,
            "shadowline-retrain": retrain_endpoint,
            "shadowline-archiver": archiver_endpoint,
        }
        with prometheus.running(prometheus.deploy_config(targets), tmp_path / "prometheus") as url:
            answers: dict[str, list[dict[str, Any]]] = {}

            def missing() -> list[str]:
                """Core panels (with their answers) that do not show data yet."""
                lacking = []
                for title, indexes in CORE.items():
                    exprs = panels[title]
                    wanted = range(len(exprs)) if indexes is None else indexes
                    answers[title] = [prometheus.query(url, expr) for expr in exprs]
                    if not all(any(v > 0 for v in values(answers[title][i])) for i in wanted):
                        lacking.append(f"{title}: {answers[title]}")
                return lacking

            shown = wait_until(lambda: not missing(), timeout_s=30.0, step_s=0.5)
            assert shown, "core panels without data after 30 s:\n" + "\n".join(missing())
            every = {
                f"{title}: {expr}": prometheus.query(url, expr)
                for title, exprs in panels.items()
                for expr in exprs
            }
            rules = httpx.get(f"{url}/api/v1/rules", timeout=5.0).json()
    failed = {query: answer for query, answer in every.items() if answer["status"] != "success"}
    assert not failed, f"queries Prometheus refused: {failed}"
    assert traffic.answers.get(200, 0) > 0
    assert traffic.answers.get(422, 0) > 0
    scores = answers["Score quantiles by model"][0]["data"]["result"]
    assert {(s["metric"]["role"], s["metric"]["version"]) for s in scores} == {
        ("production", "v1"),
        ("shadow", "v2"),
    }
    [share_4xx] = values(answers["Client and server errors"][0])
    assert 0 < share_4xx < 1
    names = {rule["name"] for group in rules["data"]["groups"] for rule in group["rules"]}
    assert names == set(prometheus.alert_rules())
