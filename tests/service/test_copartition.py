"""The scores and labels topics are co-partitioned: a real scorer writes its records, and
``shadowline labels send`` its labels, each keyed by transaction id, so on two topics with the
same partition count a transaction's score and label share a partition number (the production
topics have 12 each; deploy/kubernetes/platform/kafka-topics.yaml), whichever Kafka client the
scorer uses."""

from __future__ import annotations

import time
from collections.abc import Callable

from kafka import KafkaConsumer, TopicPartition

from registry import ModelRegistry
from registry.records import LabelRecord
from retrain.evidence.topics import send_labels
from service.app import create_app
from service.settings import ServiceSettings
from tests.factories import random_rows
from tests.service.helpers import make_production
from tests.service.server import serving

PARTITIONS = 4
IDS = [f"tx-{n}" for n in range(48)]


def _partitions(bootstrap: str, topic: str, expected: int) -> dict[str, int]:
    """``{key: partition}`` of every record of ``topic`` (until ``expected`` are read)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    found: dict[str, int] = {}
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        deadline = time.monotonic() + 20
        while len(found) < expected and time.monotonic() < deadline:
            for tp, messages in consumer.poll(timeout_ms=200).items():
                found.update({m.key.decode(): tp.partition for m in messages if m.key})
    finally:
        consumer.close()
    return found


def test_a_score_and_its_label_land_in_the_same_partition(
    registry: ModelRegistry,
    make_settings: Callable[..., ServiceSettings],
    make_topic: Callable[..., str],
    kafka_bootstrap: str,
    kafka_client: str,
) -> None:
    make_production(registry, "v1")
    scores, labels = make_topic("scores", PARTITIONS), make_topic("labels", PARTITIONS)
    rows = random_rows(n=len(IDS), seed=3)
    settings = make_settings(scores_topic=scores, kafka_client=kafka_client)
    with serving(create_app(settings, registry)) as client:
        for tid, row in zip(IDS, rows, strict=True):
            assert client.post(
                "/v1/score", json={"transaction_id": tid, "features": row}
            ).is_success
        scored = _partitions(kafka_bootstrap, scores, len(IDS))
    label_records = [
        LabelRecord(transaction_id=tid, is_fraud=n % 7 == 0, label_time=1.7e9, source="test")
        for n, tid in enumerate(IDS)
    ]
    assert send_labels([kafka_bootstrap], labels, label_records) == len(IDS)
    labelled = _partitions(kafka_bootstrap, labels, len(IDS))
    assert set(scored) == set(labelled) == set(IDS)
    assert scored == labelled
    assert len(set(scored.values())) == PARTITIONS  # spread over every partition
