"""Broker outages against the real broker and a real scorer (sidecar processes): records wait
in the spool and every one arrives exactly once, also across a scorer restart."""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry import ModelRegistry
from registry.records import ScoreRecord
from service.app import create_app
from service.live import LiveModels, ModelSet
from service.metrics import ServiceMetrics
from service.outbox import SpoolConfig
from service.producer import ProducerConfig
from service.settings import ServiceSettings
from service.sidecar import Sidecar
from service.sidecar_loop import SidecarConfig
from shadowline.stack import ensure_topics, free_port
from tests.service.helpers import build, make_production, sample_value, scored, wait_until
from tests.service.kafka_helpers import read_records
from tests.service.processes import Service, dedicated
from tests.service.server import serving
from tests.service.traffic import Traffic, metric

TOPIC = "scores.outage"


def outage_settings(
    make_settings: Callable[..., ServiceSettings], broker: Service, **overrides: Any
) -> ServiceSettings:
    """A scorer whose in-memory buffer is small (2,000 transactions queued, 100 records in
    flight), so an outage of seconds runs well past it.  The queue still absorbs the sidecar
    falling behind for seconds on a crowded machine (it runs at nice 0 here for the same
    reason): a transaction dropped for that would fail these tests for the wrong reason.
    No linger: the replay sends at most the in-flight bound per linger and round trip, 100
    per ~70 ms at the default 50 ms, about 1,400 records a second, which the test's traffic
    matched on a fast machine, so the spool never emptied while it ran."""
    values: dict[str, Any] = {
        "kafka_bootstrap": broker.address,
        "scores_topic": TOPIC,
        "sidecar_process": True,
        "kafka_buffer_records": 100,
        "kafka_linger_ms": 0,
        "shadow_queue_size": 2000,
        "sidecar_niceness": 0,
    }
    return make_settings(**(values | overrides))


def broker_state(client: httpx.Client) -> dict[str, Any]:
    answer = client.get("/readyz")
    assert answer.status_code == 200  # the outage never fails readiness
    state: dict[str, Any] = answer.json()["broker"]
    return state


def restart(broker: Service, port: int) -> None:
    """Start the broker again and re-create the topic, as `shadowline stack up` does."""
    broker.start()
    ensure_topics(port, [TOPIC], partitions=1)


def once(records: list[ScoreRecord]) -> collections.Counter[str]:
    return collections.Counter(r.transaction_id for r in records)


@pytest.fixture
def production(registry: ModelRegistry) -> ModelRegistry:
    make_production(registry, "v1")
    return registry


def test_an_outage_past_the_in_memory_buffer_loses_nothing_and_sends_nothing_twice(
    production: ModelRegistry, make_settings: Callable[..., ServiceSettings], tmp_path: Path
) -> None:
    port = free_port()
    with dedicated("kafka", port, tmp_path / "broker.log") as broker:
        ensure_topics(port, [TOPIC], partitions=1)
        settings = outage_settings(make_settings, broker)
        buffer = settings.shadow_queue_size + settings.kafka_buffer_records
        with (
            serving(create_app(settings, production)) as client,
            Traffic(str(client.base_url), threads=2) as traffic,
        ):
            assert wait_until(lambda: metric(client, "shadowline_kafka_sent_total") > 50)
            # The in-memory stand-in broker forgets what it acknowledged when it dies (Kafka
            # keeps it), so the records before the outage are read first, at a moment when
            # everything answered has been acknowledged.
            traffic.pause()
            before = set(traffic.sent)
            assert wait_until(lambda: metric(client, "shadowline_kafka_sent_total") == len(before))
            first = read_records(broker.address, TOPIC, until=lambda rs: len(rs) >= len(before))
            broker.kill()
            traffic.resume()
            assert wait_until(lambda: broker_state(client)["reachable"] is False)
            assert wait_until(lambda: broker_state(client)["spooled_records"] > 2 * buffer, 90)
            assert broker_state(client)["spooled_bytes"] > 0
            restart(broker, port)
            assert wait_until(lambda: broker_state(client)["spooled_records"] == 0, 60)
            assert broker_state(client)["reachable"] is True
            mark = len(traffic.sent)
            assert wait_until(lambda: len(traffic.sent) > mark + 50)
            traffic.pause()
            answered = len(traffic.sent)
            assert wait_until(lambda: metric(client, "shadowline_kafka_sent_total") == answered)
            counts = {
                name: metric(client, f"shadowline_{name}_total")
                for name in (
                    "kafka_dropped",
                    "kafka_failed",
                    "shadow_shed",
                    "spool_written",
                    "spool_replayed",
                )
            }
        after = set(traffic.sent) - before
        records = read_records(
            broker.address, TOPIC, timeout_s=30, until=lambda rs: after <= set(once(rs))
        )
    assert traffic.failures == []
    assert once(first) == collections.Counter(before)  # each exactly once
    assert once(records) == collections.Counter(after)  # each exactly once, nothing else
    assert counts["kafka_dropped"] == counts["kafka_failed"] == counts["shadow_shed"] == 0
    assert counts["spool_written"] == counts["spool_replayed"] > 2 * buffer


def test_a_scorer_restarted_during_an_outage_sends_the_spool_on_start(
    production: ModelRegistry, make_settings: Callable[..., ServiceSettings], tmp_path: Path
) -> None:
    port = free_port()
    with dedicated("kafka", port, tmp_path / "broker.log") as broker:
        ensure_topics(port, [TOPIC], partitions=1)
        settings = outage_settings(make_settings, broker)
        with serving(create_app(settings, production)) as client:
            assert wait_until(lambda: broker_state(client)["reachable"] is True)
            broker.kill()
            with Traffic(str(client.base_url), threads=2, prefix="a") as first:
                assert wait_until(lambda: broker_state(client)["spooled_records"] > 300, 60)
            assert wait_until(lambda: broker_state(client)["spooled_records"] == len(first.sent))
        # Stopped during the outage; the next scorer (same spool directory) adopts its spool.
        with serving(create_app(settings, production)) as client:
            assert wait_until(lambda: broker_state(client)["spooled_records"] == len(first.sent))
            with Traffic(str(client.base_url), threads=2, prefix="b") as second:
                assert wait_until(lambda: len(second.sent) > 50)
                restart(broker, port)
                assert wait_until(lambda: broker_state(client)["spooled_records"] == 0, 60)
            total = len(first.sent) + len(second.sent)
            assert wait_until(lambda: metric(client, "shadowline_kafka_sent_total") == total)
        records = read_records(
            broker.address, TOPIC, timeout_s=30, until=lambda rs: len(rs) >= total
        )
    assert first.failures == second.failures == []
    assert once(records) == collections.Counter(first.sent + second.sent)
    assert not list((tmp_path / "spool" / TOPIC).iterdir())  # replayed spools are removed


def test_records_in_flight_when_the_broker_dies_are_sent_once_when_it_is_back(
    metrics: ServiceMetrics, tmp_path: Path
) -> None:
    # The broker stops answering with records sent and unacknowledged, then dies: the lost
    # connection fails them, and they go to the spool and out again once, in their order.
    port = free_port()
    with dedicated("kafka", port, tmp_path / "broker.log") as broker:
        ensure_topics(port, [TOPIC], partitions=1)
        config = SidecarConfig(
            ProducerConfig(servers=(broker.address,), topic=TOPIC, max_in_flight=1000),
            stats_interval_s=0.05,
            spool=SpoolConfig(directory=str(tmp_path / "spool"), max_bytes=1 << 20),
        )
        sidecar = Sidecar(
            config,
            LiveModels(ModelSet(1, build("v1"))),
            metrics,
            queue_size=1000,
            batch_wait_s=0.001,
        )
        sidecar.start()
        try:
            assert wait_until(lambda: sidecar.connected)
            broker.pause()
            items = [
                item._replace(transaction_id=f"t{n}")
                for n, item in enumerate(scored(build("v1"), 1) * 200)
            ]
            for item in items:
                sidecar.submit(item)
            assert wait_until(lambda: sample_value(metrics, "shadowline_records_total") == 200)
            broker.kill()
            spooled = "shadowline_spool_written_total"
            assert wait_until(lambda: sample_value(metrics, spooled) == 200)
            restart(broker, port)
            assert wait_until(lambda: sample_value(metrics, "shadowline_kafka_sent_total") == 200)
        finally:
            sidecar.close()
        records = read_records(broker.address, TOPIC, until=lambda rs: len(rs) >= 200)
    assert [r.transaction_id for r in records] == [item.transaction_id for item in items]
    assert sample_value(metrics, "shadowline_spool_replayed_total") == 200
