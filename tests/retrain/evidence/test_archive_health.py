"""The archiver's /healthz: healthy while its loop polls the broker, 503 (naming how long ago)
once it has not for longer than the stall limit; every other path is the metrics."""

from __future__ import annotations

import json
import time

import httpx
from prometheus_client import CollectorRegistry

from retrain.evidence.archive_health import health, serve
from retrain.evidence.archive_metrics import ArchiveMetrics
from shadowline.stack import free_port


def test_health_follows_the_age_of_the_last_poll() -> None:
    metrics = ArchiveMetrics(CollectorRegistry())
    assert health(metrics, 60.0, started=100.0, now=130.0) == (
        200,
        {"status": "starting", "since_start_s": 30.0},
    )
    status, body = health(metrics, 60.0, started=100.0, now=161.0)
    assert status == 503
    assert body["reason"] == "no poll of the broker in the 60s since the archiver started"
    metrics.polled()
    assert metrics.polled_at is not None
    assert health(metrics, 60.0, started=0.0, now=metrics.polled_at + 5)[0] == 200
    status, body = health(metrics, 60.0, started=0.0, now=metrics.polled_at + 75)
    assert status == 503
    assert body["reason"] == "the archiver's loop last polled the broker 75s ago (limit 60s)"


def test_the_port_serves_healthz_and_the_metrics() -> None:
    metrics = ArchiveMetrics(CollectorRegistry(), ("scores",))
    port = free_port()
    server = serve(port, metrics, stall_s=0.5, host="127.0.0.1")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
            starting = client.get("/healthz")
            assert starting.status_code == 200
            assert starting.json()["status"] == "starting"
            time.sleep(0.6)  # past the stall limit without a single poll
            stalled = client.get("/healthz")
            assert stalled.status_code == 503
            assert "no poll of the broker" in stalled.json()["reason"]
            metrics.polled()
            polled = client.get("/healthz")
            assert polled.status_code == 200
            assert json.loads(polled.content)["status"] == "ok"
            exposition = client.get("/metrics").text
            assert "shadowline_archive_last_poll_timestamp_seconds" in exposition
            assert 'shadowline_archive_records_total{outcome="archived",topic="scores"}' in (
                exposition
            )
    finally:
        server.shutdown()
        server.server_close()
