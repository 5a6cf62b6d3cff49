"""The archiver against the real broker: every record once, dead letters, restarts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from registry.records import encode
from retrain.errors import ArchiveError
from retrain.evidence import layout
from retrain.evidence.archiver import group_consumer
from retrain.settings import ArchiveSettings
from tests.retrain.evidence.archive_helpers import archive_once, archived_ids, messy_traffic
from tests.retrain.evidence.records import produce


@pytest.fixture
def topics(make_topic: Callable[..., str]) -> tuple[str, str]:
    return make_topic("scores", partitions=3), make_topic("labels", partitions=2)


def test_every_record_is_archived_once_and_bad_ones_go_to_the_dead_letter_file(
    kafka_bootstrap: str, topics: tuple[str, str], tmp_path: Path
) -> None:
    scores, labels = messy_traffic(2000)
    produce(kafka_bootstrap, topics[0], [(s.transaction_id, encode(s)) for s in scores])
    produce(kafka_bootstrap, topics[0], [("bad-1", b"{not json"), ("bad-2", None)])
    produce(kafka_bootstrap, topics[1], [(x.transaction_id, encode(x)) for x in labels])
    progress, metrics = archive_once(kafka_bootstrap, *topics, tmp_path, "g1")
    assert sorted(archived_ids(tmp_path, "scores")) == sorted(s.transaction_id for s in scores)
    assert sorted(archived_ids(tmp_path, "labels")) == sorted(x.transaction_id for x in labels)
    assert progress.archived == {"scores": len(scores), "labels": len(labels)}
    assert progress.refused == {"scores": 2}
    assert metrics.value(topics[0], "archived") == len(scores)
    assert metrics.value(topics[0], "refused") == 2
    dead = [
        json.loads(line)
        for path in (tmp_path / "scores" / layout.DEAD_LETTER).glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert sorted(d["value"] for d in dead) == ["", "{not json"]
    assert {d["topic"] for d in dead} == {topics[0]}
    assert all(isinstance(d["offset"], int) and d["problem"] for d in dead)
    # Every file lies in the partition of its records' day.
    for path in (tmp_path / "scores").glob("date=*/*.parquet"):
        days = pq.read_table(path, columns=["scored_at"]).column(0).to_pylist()
        assert {d.date().isoformat() for d in days} == {path.parent.name.removeprefix("date=")}


def test_a_rerun_archives_only_what_is_new_even_without_the_committed_offsets(
    kafka_bootstrap: str, topics: tuple[str, str], tmp_path: Path
) -> None:
    scores, labels = messy_traffic(1200)
    first, second = scores[:700], scores[700:]
    produce(kafka_bootstrap, topics[0], [(s.transaction_id, encode(s)) for s in first])
    produce(kafka_bootstrap, topics[1], [(x.transaction_id, encode(x)) for x in labels])
    archive_once(kafka_bootstrap, *topics, tmp_path, "g1")
    again, _ = archive_once(kafka_bootstrap, *topics, tmp_path, "g1")
    assert sum(again.archived.values()) == 0
    assert sum(again.skipped.values()) == 0
    produce(kafka_bootstrap, topics[0], [(s.transaction_id, encode(s)) for s in second])
    # A new group has no committed offsets: it reads everything, and the archive says what
    # is already there.
    fresh, _ = archive_once(kafka_bootstrap, *topics, tmp_path, "g2")
    assert fresh.archived == {"scores": len(second)}
    assert fresh.skipped == {"scores": len(first), "labels": len(labels)}
    assert sorted(archived_ids(tmp_path, "scores")) == sorted(s.transaction_id for s in scores)


def test_an_incomplete_batch_is_removed_and_archived_again(
    kafka_bootstrap: str, topics: tuple[str, str], tmp_path: Path
) -> None:
    scores, _ = messy_traffic(1500)  # 15 hours from 11:06 UTC: some batches span two days
    produce(kafka_bootstrap, topics[0], [(s.transaction_id, encode(s)) for s in scores])
    archive_once(kafka_bootstrap, *topics, tmp_path, "g1")
    split = list((tmp_path / "scores").glob("date=*/*-n2.parquet"))
    assert split, "expected a batch spanning two days"
    split[0].unlink()  # as if the archiver died between the two renames
    (tmp_path / "scores" / ".part-left-by-a-crash.parquet.123.tmp").write_bytes(b"half")
    again, _ = archive_once(kafka_bootstrap, *topics, tmp_path, "g2")
    assert sorted(archived_ids(tmp_path, "scores")) == sorted(s.transaction_id for s in scores)
    assert again.archived["scores"] > 0
    assert not list((tmp_path / "scores").glob(".*.tmp"))


def test_a_missing_topic_or_broker_is_named(kafka_bootstrap: str, topics: tuple[str, str]) -> None:
    settings = ArchiveSettings(
        kafka_bootstrap=kafka_bootstrap, scores_topic="no-such-topic", labels_topic=topics[1]
    )
    with pytest.raises(ArchiveError, match="topic no-such-topic does not exist on Kafka"):
        group_consumer(settings)
    closed = ArchiveSettings(kafka_bootstrap="127.0.0.1:1")
    with pytest.raises(ArchiveError, match=r"cannot reach Kafka at 127.0.0.1:1 to archive"):
        group_consumer(closed)
