"""The Kafka sink against the real broker: delivery, framing, a bounded buffer without one."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from service.metrics import ServiceMetrics
from service.producer import ProducerConfig, Stats, broker_accepts, frame, unframe
from service.shadow import Scored, build_record
from service.sink import KafkaSink
from shadowline.stack import free_port
from tests.service.conftest import build, sample_value
from tests.service.kafka_helpers import read_records


def publish_records(sink: KafkaSink, n: int, prefix: str = "t") -> None:
    model = build("v1")
    for i in range(n):
        item = Scored(f"{prefix}{i}", "r", 1.7e9, {"amount": 1.0}, model, 0.1, "allow", 0.02, {})
        sink.publish(item.transaction_id.encode(), orjson.dumps(build_record(item, [])))


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_frames_round_trip() -> None:
    records = [(b"k1", b"v" * 300), (b"", b""), ("ключ".encode(), b"\n\x00")]
    assert list(unframe(frame(records))) == records
    assert Stats.unpack(Stats(3, 2, 1, True).pack()) == Stats(3, 2, 1, True)


def test_records_reach_the_topic_keyed_by_transaction(
    kafka_bootstrap: str, make_topic: Callable[..., str], metrics: ServiceMetrics
) -> None:
    topic = make_topic("scores")
    config = ProducerConfig(servers=(kafka_bootstrap,), topic=topic, max_in_flight=100)
    sink = KafkaSink(config, metrics, buffer_records=100, in_process=True)
    sink.start()
    publish_records(sink, 5)
    records = read_records(kafka_bootstrap, topic, until=lambda r: len(r) >= 5)
    assert wait_for(lambda: sink.connected)
    sink.close()
    assert sorted(r.transaction_id for r in records) == [f"t{i}" for i in range(5)]
    assert sample_value(metrics, "shadowline_kafka_sent_total") == 5
    assert sample_value(metrics, "shadowline_kafka_producer_restarts_total") == 1


def test_the_producer_process_delivers_and_reports(
    kafka_bootstrap: str, make_topic: Callable[..., str], metrics: ServiceMetrics
) -> None:
    topic = make_topic("scores")
    config = ProducerConfig(servers=(kafka_bootstrap,), topic=topic, max_in_flight=100)
    sink = KafkaSink(config, metrics, buffer_records=100)
    sink.start()
    publish_records(sink, 20, prefix="p")
    records = read_records(kafka_bootstrap, topic, until=lambda r: len(r) >= 20)
    sink.close()
    assert len({r.transaction_id for r in records}) == 20
    assert sample_value(metrics, "shadowline_kafka_sent_total") == 20


def test_without_a_broker_records_are_dropped_and_counted(metrics: ServiceMetrics) -> None:
    servers = (f"127.0.0.1:{free_port()}",)
    assert not broker_accepts(servers)
    config = ProducerConfig(servers=servers, topic="scores", max_in_flight=5)
    sink = KafkaSink(config, metrics, buffer_records=10, in_process=True)
    publish_records(sink, 30)  # not started: the deque holds 5, the rest is dropped
    assert sample_value(metrics, "shadowline_kafka_dropped_total") == 25
    sink.start()
    sink.close(timeout_s=1.0)
    assert sample_value(metrics, "shadowline_kafka_sent_total") == 0
    assert not sink.connected
