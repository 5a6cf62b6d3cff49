"""End to end on a real uvicorn server, real Redis and a real broker: records with shadow
scores on the topic, promotions under load, a broker outage, Redis going away."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from registry import ModelRegistry, model_registry
from service.app import create_app
from service.settings import ServiceSettings
from shadowline.stack import ensure_topics, free_port
from tests.service.helpers import ADMIN, make_production, register, wait_until
from tests.service.kafka_helpers import read_records
from tests.service.processes import dedicated
from tests.service.server import serving
from tests.service.traffic import ROWS, Traffic, metric


@pytest.fixture
def production(registry: ModelRegistry) -> ModelRegistry:
    make_production(registry, "v1")
    return registry


def test_a_scored_request_reaches_the_topic_with_shadow_scores(
    production: ModelRegistry, make_settings: Callable[..., ServiceSettings], kafka_bootstrap: str
) -> None:
    register(production, "v2", bias=-1.0)
    register(production, "v3", bias=0.5)
    production.shadow("fraud", "v2", rate=1.0, actor="test")
    production.shadow("fraud", "v3", rate=1.0, actor="test")
    settings = make_settings(sidecar_process=True)
    with serving(create_app(settings, production)) as client:
        # Both in the set, and both loaded by the sidecar process (it builds their sessions).
        assert wait_until(
            lambda: [s["loaded"] for s in client.get("/readyz").json()["shadows"]] == [True, True]
        )
        answer = client.post("/v1/score", json={"transaction_id": "tx-42", "features": ROWS[0]})
        assert answer.status_code == 200
        records = read_records(
            kafka_bootstrap,
            settings.scores_topic,
            until=lambda rs: any(r.transaction_id == "tx-42" for r in rs),
        )
    [record] = [r for r in records if r.transaction_id == "tx-42"]
    assert record.request_id == answer.json()["request_id"]
    assert record.production.version == "v1"
    assert record.production.score == answer.json()["score"]
    assert record.inputs == ROWS[0]
    assert sorted(s.version for s in record.shadows) == ["v2", "v3"]
    for shadow in record.shadows:
        assert shadow.error is None
        assert shadow.score is not None
        assert shadow.score != record.production.score


def test_a_promotion_reaches_the_scorer_within_2_seconds(
    production: ModelRegistry, make_settings: Callable[..., ServiceSettings]
) -> None:
    register(production, "v2", bias=-1.0)
    # A long reconcile interval: the change must arrive through the event.
    with serving(create_app(make_settings(reconcile_interval_s=2.0), production)) as client:
        assert wait_until(lambda: client.get("/readyz").status_code == 200)
        approve = {"actor": "ana", "reason": "test", "force": True}
        assert client.post("/admin/models/v2/approve", json=approve, headers=ADMIN).is_success
        assert client.post("/admin/models/v2/promote", json={"actor": "ana"}, headers=ADMIN)

        def serves_v2() -> bool:
            body = {"transaction_id": "t", "features": ROWS[1]}
            return bool(client.post("/v1/score", json=body).json()["model_version"] == "v2")

        assert wait_until(serves_v2, timeout_s=2.0)
        later = [
            client.post("/v1/score", json={"transaction_id": f"t{i}", "features": ROWS[i]})
            for i in range(5)
        ]
        assert {r.json()["model_version"] for r in later} == {"v2"}


@pytest.mark.slow
def test_no_request_fails_during_50_promotions_under_load(
    production: ModelRegistry, make_settings: Callable[..., ServiceSettings]
) -> None:
    versions = [f"v{i}" for i in range(2, 52)]
    for i, version in enumerate(versions):
        register(production, version, bias=-2.0 + i / 100)
    with serving(create_app(make_settings(), production)) as client:
        assert wait_until(lambda: client.get("/readyz").status_code == 200)
        with Traffic(str(client.base_url)) as traffic:
            for version in versions:
                production.approve("fraud", version, actor="test", reason="load", force=True)
                production.promote("fraud", version, actor="test")
                assert wait_until(
                    lambda v=version: client.get("/readyz").json()["production"]["version"] == v  # type: ignore[misc]
                )
        swaps = client.get("/metrics").text
    assert traffic.failures == []
    assert len(traffic.sent) > 100
    assert len(traffic.versions) > 5
    assert 'shadowline_model_swaps_total{role="production"} 51.0' in swaps


@pytest.mark.slow
def test_without_a_spool_a_broker_outage_drops_records_and_recovers(
    production: ModelRegistry, make_settings: Callable[..., ServiceSettings], tmp_path: Path
) -> None:
    port = free_port()
    with dedicated("kafka", port, tmp_path / "broker.log") as broker:
        topic = "scores.outage"
        ensure_topics(port, [topic], partitions=1)
        settings = make_settings(
            kafka_bootstrap=broker.address,
            scores_topic=topic,
            sidecar_process=True,
            kafka_buffer_records=100,
            shadow_queue_size=100,
            kafka_restart_after_s=2.0,
            kafka_delivery_timeout_ms=5000,
            spool_max_bytes=0,
        )
        with (
            serving(create_app(settings, production)) as client,
            Traffic(str(client.base_url), threads=2) as traffic,
        ):
            assert wait_until(lambda: metric(client, "shadowline_kafka_sent_total") > 20)
            broker.kill()
            assert wait_until(lambda: metric(client, "shadowline_kafka_dropped_total") > 0, 30)
            broker.start()
            ensure_topics(port, [topic], partitions=1)  # the memory broker lost its topics
            delivered = metric(client, "shadowline_kafka_sent_total")
            assert wait_until(lambda: metric(client, "shadowline_kafka_sent_total") > delivered, 30)
            mark = len(traffic.sent)
            assert wait_until(lambda: len(traffic.sent) > mark + 20)
            after = set(traffic.sent[mark : mark + 20])
            records = read_records(
                broker.address,
                topic,
                timeout_s=30,
                until=lambda rs: after <= {r.transaction_id for r in rs},
            )
            dropped = metric(client, "shadowline_kafka_dropped_total")
        assert traffic.failures == []
        assert dropped > 0
        assert after <= {r.transaction_id for r in records}


def test_scoring_goes_on_when_redis_goes_away(
    make_settings: Callable[..., ServiceSettings], tmp_path: Path
) -> None:
    port = free_port()
    with dedicated("redis", port, tmp_path / "redis.log") as redis_server:
        settings = make_settings(redis_url=f"redis://{redis_server.address}/0")
        registry = model_registry(settings)
        make_production(registry, "v1")
        with serving(create_app(settings, registry)) as client:
            assert wait_until(lambda: client.get("/readyz").status_code == 200)
            redis_server.kill()
            assert wait_until(
                lambda: client.get("/readyz").json()["registry"]["reachable"] is False
            )
            readiness = client.get("/readyz")
            assert readiness.status_code == 200
            assert readiness.json()["registry"]["error"].startswith("ConnectionError: ")
            body = {"transaction_id": "t-1", "features": ROWS[0]}
            assert client.post("/v1/score", json=body).json()["model_version"] == "v1"
            assert metric(client, "shadowline_registry_reachable") == 0
            promote = client.post("/admin/models/v1/promote", json={"actor": "a"}, headers=ADMIN)
            assert promote.status_code == 503
            assert promote.json()["detail"].startswith(
                "the model registry (Redis) is unreachable: "
            )
            redis_server.start()  # back, but empty: the scorer reconnects and reports it
            assert wait_until(lambda: client.get("/readyz").json()["registry"]["reachable"])
            # An empty registry (revision 0 < the one loaded) does not take production away.
            assert client.post("/v1/score", json=body).json()["model_version"] == "v1"
