"""Independent readers agree with Shadowline: pyarrow and DuckDB read the archive directly,
confluent-kafka (librdkafka) reads the topics, and the counts match the project's own."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
from confluent_kafka import Consumer, TopicPartition

from registry.records import decode_label, decode_score, encode
from retrain.evidence.archive_read import pair_archive
from retrain.evidence.topics import BadRecord, read_topic
from tests.retrain.evidence.archive_helpers import archive_once, messy_traffic
from tests.retrain.evidence.records import produce


def _librdkafka_count(bootstrap: str, topic: str, partitions: int, expected: int) -> int:
    """Records of ``topic`` read from the beginning by librdkafka (until ``expected`` or 2 s
    without a new record: the broker's reported end offsets are not exact)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "independent", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    count, quiet_since = 0, time.monotonic()
    try:
        while count < expected and time.monotonic() - quiet_since < 2.0:
            batch = consumer.consume(num_messages=1000, timeout=0.2)
            if batch:
                quiet_since = time.monotonic()
            count += sum(1 for message in batch if message.error() is None)
    finally:
        consumer.close()
    return count


def test_independent_readers_agree_with_shadowline(
    kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    scores_topic, labels_topic = make_topic("scores", partitions=3), make_topic("labels")
    scores, labels = messy_traffic(2500)
    produce(kafka_bootstrap, scores_topic, [(s.transaction_id, encode(s)) for s in scores])
    produce(kafka_bootstrap, scores_topic, [("bad", b"[]")])
    produce(kafka_bootstrap, labels_topic, [(x.transaction_id, encode(x)) for x in labels])
    progress, _ = archive_once(kafka_bootstrap, scores_topic, labels_topic, tmp_path, "readers")
    bad: list[BadRecord] = []
    ours = sum(
        1 for _ in read_topic([kafka_bootstrap], scores_topic, decode_score, on_bad=bad.append)
    )
    ours_labels = sum(1 for _ in read_topic([kafka_bootstrap], labels_topic, decode_label))

    # The topics, through librdkafka: every record, the undecodable one included.
    assert _librdkafka_count(kafka_bootstrap, scores_topic, 3, len(scores) + 1) == ours + len(bad)
    assert _librdkafka_count(kafka_bootstrap, labels_topic, 1, len(labels)) == ours_labels

    # The archive, through pyarrow's dataset reader with Hive partitioning.
    scores_ds = ds.dataset(
        tmp_path / "scores", format="parquet", partitioning="hive", exclude_invalid_files=True
    )
    labels_ds = ds.dataset(tmp_path / "labels", format="parquet", partitioning="hive")
    assert scores_ds.count_rows() == progress.archived["scores"] == ours
    assert labels_ds.count_rows() == progress.archived["labels"] == ours_labels
    assert "date" in scores_ds.schema.names

    # The archive, through DuckDB's SQL alone: the challenger's entries by UNNEST.
    con = duckdb.connect()
    glob = str(tmp_path / "scores" / "*" / "*.parquet")
    total, days = con.execute(
        "SELECT count(*), count(DISTINCT date) FROM read_parquet($g, hive_partitioning = true, "
        "union_by_name = true)",
        {"g": glob},
    ).fetchone() or (0, 0)
    entries = con.execute(
        "SELECT count(*) FROM (SELECT unnest(shadows) AS s FROM read_parquet($g, "
        "union_by_name = true)) WHERE s.version = 'v2'",
        {"g": glob},
    ).fetchone()
    con.close()
    _, sampling, _ = pair_archive(tmp_path, "v2")
    assert total == ours
    assert days >= 2
    assert entries == (sampling.sampled + sampling.duplicates,)
