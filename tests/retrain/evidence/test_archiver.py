"""The archiver against the real broker: every record once, dead letters, restarts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from registry.records import LabelRecord, ScoreRecord, encode
from retrain.errors import ArchiveError
from retrain.evidence import layout
from retrain.evidence.archive_read import pair_archive, read_tail
from retrain.evidence.archiver import group_consumer
from retrain.evidence.frame import pair_records
from retrain.settings import ArchiveSettings
from shadowline.cli import app
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
    assert metrics.polled_at is not None  # the loop's heartbeat, which /healthz reads
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


def test_the_tail_is_what_the_archive_does_not_have_yet(
    kafka_bootstrap: str, topics: tuple[str, str], tmp_path: Path
) -> None:
    scores, labels = messy_traffic(1500)
    produce(kafka_bootstrap, topics[0], [(s.transaction_id, encode(s)) for s in scores[:1000]])
    produce(kafka_bootstrap, topics[1], [(x.transaction_id, encode(x)) for x in labels[:300]])
    archive_once(kafka_bootstrap, *topics, tmp_path, "g1")
    produce(kafka_bootstrap, topics[0], [(s.transaction_id, encode(s)) for s in scores[1000:]])
    produce(kafka_bootstrap, topics[1], [(x.transaction_id, encode(x)) for x in labels[300:]])
    tail_scores, tail_labels = read_tail([kafka_bootstrap], tmp_path, *topics)
    assert sorted(tail_scores, key=_key) == sorted(scores[1000:], key=_key)
    assert sorted(tail_labels, key=_key) == sorted(labels[300:], key=_key)
    paired, sampling, _ = pair_archive(
        tmp_path, "v2", tail_scores=tail_scores, tail_labels=tail_labels
    )
    want, want_sampling, _ = pair_records(scores, labels, "v2")
    assert paired.transaction_id == want.transaction_id
    assert (sampling.sampled, sampling.labels_read) == (want_sampling.sampled, len(labels))


def _key(record: ScoreRecord | LabelRecord) -> tuple[str, float]:
    at = record.scored_at if isinstance(record, ScoreRecord) else record.label_time
    return record.transaction_id, at


def test_the_archive_command_once_reports_what_it_did(
    kafka_bootstrap: str, topics: tuple[str, str], tmp_path: Path, in_tmp_cwd: Path
) -> None:
    scores, labels = messy_traffic(300)
    produce(kafka_bootstrap, topics[0], [(s.transaction_id, encode(s)) for s in scores])
    produce(kafka_bootstrap, topics[0], [("bad", b"nope")])
    produce(kafka_bootstrap, topics[1], [(x.transaction_id, encode(x)) for x in labels])
    env = {
        "SHADOWLINE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "SHADOWLINE_SCORES_TOPIC": topics[0],
        "SHADOWLINE_LABELS_TOPIC": topics[1],
        "SHADOWLINE_ARCHIVE_DIR": str(tmp_path / "archive"),
    }
    out = CliRunner().invoke(app, ["archive", "--once", "--json"], env=env)
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == {
        "archived": {"scores": len(scores), "labels": len(labels)},
        "refused": {"scores": 1},
        "skipped": {},
        "files": json.loads(out.stdout)["files"],
        "archive": str(tmp_path / "archive"),
    }
    missing = CliRunner().invoke(
        app, ["archive", "--once"], env={**env, "SHADOWLINE_LABELS_TOPIC": "nope"}
    )
    assert missing.exit_code == 1
    assert "error: topic nope does not exist on Kafka" in missing.stderr
    bad = CliRunner().invoke(
        app, ["archive", "--once"], env={**env, "SHADOWLINE_ARCHIVE_FLUSH_RECORDS": "0"}
    )
    assert bad.exit_code == 2
    assert bad.stderr == (
        "error: invalid settings for ArchiveSettings: SHADOWLINE_ARCHIVE_FLUSH_RECORDS='0': "
        "Input should be greater than or equal to 1\n"
    )
