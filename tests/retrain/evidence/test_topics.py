"""Reading whole topics and sending labels, against the real Kafka-protocol broker."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kafka import KafkaConsumer, TopicPartition

from registry.records import decode_label, decode_score, encode
from retrain.errors import AnalysisError
from retrain.evidence.topics import BadRecord, read_topic, send_labels
from shadowline.stack import free_port
from tests.retrain.evidence.records import label, produce, traffic


def test_reads_every_record_of_every_partition_and_stops(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    # Hundreds of records per batch: the broker's end offset alone would cut the last one short.
    topic = make_topic("scores", partitions=3)
    scores, _ = traffic(900, {"v2": 2})
    produce(kafka_bootstrap, topic, [(s.transaction_id, encode(s)) for s in scores])
    bad: list[BadRecord] = []
    read = list(read_topic([kafka_bootstrap], topic, decode_score, on_bad=bad.append))
    assert sorted(r.transaction_id for r in read) == [s.transaction_id for s in scores]
    assert bad == []


def test_records_written_while_reading_are_left_for_the_next_read(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic("labels")
    first = [label(f"tx-{i}", False) for i in range(6000)]  # more than one poll returns
    produce(kafka_bootstrap, topic, [(x.transaction_id, encode(x)) for x in first])
    reading = read_topic([kafka_bootstrap], topic, decode_label)
    read = [next(reading)]
    later = [label(f"late-{i}", True) for i in range(10)]
    produce(kafka_bootstrap, topic, [(x.transaction_id, encode(x)) for x in later])
    read += list(reading)
    assert read == first
    assert list(read_topic([kafka_bootstrap], topic, decode_label)) == first + later


def test_a_bad_record_is_skipped_and_named_by_its_offset(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic("labels")
    good = [label(f"tx-{i}", i == 1) for i in range(4)]
    values: list[tuple[str, bytes | None]] = [(g.transaction_id, encode(g)) for g in good]
    values.insert(1, ("tx-x", b'{"transaction_id": "tx-x", "is_fraud": "perhaps"}'))
    values.insert(3, ("tx-y", b"\x00garbage"))
    values.append(("tx-z", None))
    produce(kafka_bootstrap, topic, values)
    bad: list[BadRecord] = []
    read = list(read_topic([kafka_bootstrap], topic, decode_label, on_bad=bad.append))
    assert read == good
    assert [(b.partition, b.offset) for b in bad] == [(0, 1), (0, 3), (0, 6)]
    assert str(bad[0]).startswith(
        f"{topic} partition 0 offset 1: invalid LabelRecord: is_fraud: Input should be a valid "
        "boolean"
    )
    assert "label_time: Field required; source: Field required" in str(bad[0])
    assert str(bad[1]).startswith(f"{topic} partition 0 offset 3: invalid LabelRecord: ")
    assert str(bad[2]) == f"{topic} partition 0 offset 6: ValueError: the record has no value"


def test_bad_records_are_logged_by_default(
    kafka_bootstrap: str, make_topic: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    topic = make_topic("labels")
    produce(kafka_bootstrap, topic, [("tx-1", b"[]")])
    assert list(read_topic([kafka_bootstrap], topic, decode_label)) == []
    assert [r.getMessage() for r in caplog.records] == [
        f"skipped a record that does not decode: {topic} partition 0 offset 0: invalid "
        "LabelRecord: (top level): Input should be an object"
    ]


def test_an_empty_topic_reads_as_nothing(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic("labels", partitions=2)
    assert list(read_topic([kafka_bootstrap], topic, decode_label, timeout_s=5)) == []


def test_a_missing_topic_and_a_missed_deadline_are_errors(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    with pytest.raises(AnalysisError) as caught:
        list(read_topic([kafka_bootstrap], "no.such.topic", decode_label))
    assert str(caught.value) == (
        f"topic no.such.topic does not exist on Kafka at {kafka_bootstrap} "
        "(shadowline stack up creates the scores and labels topics)"
    )
    topic = make_topic("labels")
    produce(kafka_bootstrap, topic, [("tx-1", encode(label("tx-1", True)))])
    with pytest.raises(AnalysisError) as late:
        list(read_topic([kafka_bootstrap], topic, decode_label, timeout_s=0))
    assert str(late.value) == (
        f"reading topic {topic} did not reach its end within 0s (partition 0 at offset 0 of 1)"
    )


def test_an_unreachable_broker_is_named() -> None:
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(AnalysisError) as caught:
        list(read_topic([address], "t", decode_label))
    assert str(caught.value) == (
        f"cannot reach Kafka at {address} to read t: {address}: Connection refused"
    )
    with pytest.raises(AnalysisError) as sending:
        send_labels([address, "nohost"], "t", [label("tx-1", True)])
    assert str(sending.value) == (
        f"cannot reach Kafka at {address},nohost to send labels to t: "
        f"{address}: Connection refused; nohost: not host:port"
    )


def test_sent_labels_arrive_keyed_by_transaction(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic("labels")
    labels = [label(f"tx-{i}", i % 2 == 0) for i in range(5)]
    assert send_labels([kafka_bootstrap], topic, labels) == 5
    assert list(read_topic([kafka_bootstrap], topic, decode_label)) == labels
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=None)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        keys = [m.key for batch in consumer.poll(timeout_ms=5000).values() for m in batch]
    finally:
        consumer.close()
    assert keys == [f"tx-{i}".encode() for i in range(5)]
    with pytest.raises(AnalysisError, match=r"^topic nowhere does not exist on Kafka at "):
        send_labels([kafka_bootstrap], "nowhere", labels)
