"""The Kafka sink against the real broker: delivery, and a bounded buffer without one."""

from __future__ import annotations

import random
from collections.abc import Callable

import orjson

from service.metrics import ServiceMetrics
from service.shadow import Scored, build_record
from service.sink import KafkaSink, broker_accepts
from shadowline.stack import free_port
from tests.service.conftest import build, sample_value
from tests.service.kafka_helpers import read_records


def test_records_reach_the_topic_keyed_by_transaction(
    kafka_bootstrap: str, make_topic: Callable[..., str], metrics: ServiceMetrics
) -> None:
    topic = make_topic("scores")
    model = build("v1")
    sink = KafkaSink([kafka_bootstrap], topic, metrics, buffer_records=100)
    sink.start()
    for i in range(5):
        item = Scored(f"t{i}", "r", 1.7e9, {"amount": 1.0}, model, 0.1, "allow", 0.02)
        sink.publish(item.transaction_id.encode(), orjson.dumps(build_record(item, [])))
    records = read_records(kafka_bootstrap, topic, until=lambda r: len(r) >= 5)
    assert sink.connected
    sink.close()
    assert sorted(r.transaction_id for r in records) == [f"t{i}" for i in range(5)]
    assert sample_value(metrics, "shadowline_kafka_sent_total") == 5
    assert sample_value(metrics, "shadowline_kafka_producer_restarts_total") == 1


def test_without_a_broker_records_are_dropped_and_counted(metrics: ServiceMetrics) -> None:
    servers = [f"127.0.0.1:{free_port()}"]
    assert not broker_accepts(servers)
    sink = KafkaSink(servers, "scores", metrics, buffer_records=10)
    sink.start()
    for _ in range(30):
        sink.publish(b"k", random.randbytes(10))
    sink.close(timeout_s=1.0)
    # 5 queued, 1 held by the sender waiting for a broker; the rest dropped.
    assert 24 <= sample_value(metrics, "shadowline_kafka_dropped_total") <= 25
    assert sample_value(metrics, "shadowline_kafka_sent_total") == 0
    assert not sink.connected
