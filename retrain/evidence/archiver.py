"""``shadowline archive``: the scores and labels topics into day-partitioned Parquet.

The archiver is a Kafka consumer group member (``SHADOWLINE_ARCHIVE_GROUP``): several can run,
each archiving the partitions it is assigned.  Records are buffered per partition; a batch is
written when it is large or old enough (or on stop), as one file per day it spans
(:mod:`retrain.evidence.layout`), and only after every file of the batch is durably renamed
into place are the offsets committed.  Exactly once, across crashes:

* a crash before a file is in place loses nothing: the offsets were not committed, so the
  records are read again;
* a crash after the files are in place but before the commit re-reads records that are already
  archived: the archive itself records the last archived offset of each partition (file names
  carry the batch's offsets), and records at or below it are skipped, not written twice;
* a crash between two renames of one batch leaves it incomplete (fewer files than its name
  says): its files are deleted at start-up and the whole batch is archived again.

A record that does not decode goes to the batch's dead-letter file
(``<kind>/_dead_letter/part-....jsonl``: topic, partition, offset, the problem, the value) and
is counted as refused; it never stops the archiver.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from registry.manifest import Decision
from registry.records import (
    LabelRecord,
    ProductionScore,
    ScoreRecord,
    decode_label,
    decode_score,
)
from retrain.errors import AnalysisError, ArchiveError
from retrain.evidence import layout
from retrain.evidence.archive_metrics import ArchiveMetrics
from retrain.evidence.topics import BadRecord, any_listening, problem_of
from retrain.settings import ArchiveSettings

log = logging.getLogger(__name__)
POLL_S = 0.2
MAX_POLL_RECORDS = 5000
CHUNK = 10_000  # decoded records are turned into Arrow columns this many at a time
_DEFAULTS = ProductionScore(version="-", score=0.0, decision=Decision.ALLOW, latency_ms=0.0)


@dataclass
class ArchiveProgress:
    """What one run of the archiver did, by kind (``scores``, ``labels``)."""

    archived: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)  # already archived (after a crash)
    files: int = 0
    lag: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        seconds = max(time.monotonic() - self.started, 1e-9)
        total = sum(self.archived.values())
        return (
            f"archived {self.archived['scores']} scores and {self.archived['labels']} labels "
            f"({total / seconds:,.0f}/s) in {self.files} files; refused "
            f"{sum(self.refused.values())}; skipped {sum(self.skipped.values())} already "
            f"archived; lag {self.lag}"
        )


@dataclass
class _Batch:
    """The records of one partition read since the last flush."""

    kind: str
    first: int
    last: int = -1
    good: list[tuple[Any, bytes, int]] = field(default_factory=list)  # (day, value, offset)
    tables: dict[Any, list[pa.Table]] = field(default_factory=lambda: defaultdict(list))
    bad: list[BadRecord] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)
    count: int = 0

    def chunk(self, partition: int) -> None:
        """Turn the buffered records into Arrow tables per day (bounded Python memory)."""
        days: dict[Any, list[tuple[bytes, int]]] = defaultdict(list)
        for day, value, offset in self.good:
            days[day].append((value, offset))
        for day, rows in days.items():
            self.tables[day].append(_table(self.kind, partition, rows))
        self.good = []


def _table(kind: str, partition: int, rows: list[tuple[bytes, int]]) -> pa.Table:
    values = [value for value, _ in rows]
    offsets = [offset for _, offset in rows]
    if kind == layout.SCORES:
        try:
            return layout.score_table_json(values, [partition] * len(rows), offsets, _DEFAULTS)
        except pa.ArrowInvalid:
            pass  # a field's kind changes within the chunk: the slower, per-record way
        return layout.score_table(
            [layout.Located(record=decode_score(v), partition=partition, offset=o) for v, o in rows]
        )
    return layout.label_table(
        [layout.Located(record=decode_label(v), partition=partition, offset=o) for v, o in rows]
    )


Part = tuple[str, int]  # (topic, partition)


class Archiver:
    """Archives ``kinds`` (topic -> ``scores`` | ``labels``) from ``consumer`` into ``root``.

    ``consumer`` is a confluent-kafka group member with auto-commit off and partition-end
    events on (:func:`group_consumer`); librdkafka parses records in C, which the archive's
    throughput needs.
    """

    def __init__(
        self,
        root: Path,
        consumer: Consumer,
        kinds: Mapping[str, str],
        *,
        metrics: ArchiveMetrics,
        flush_records: int = 100_000,
        flush_interval_s: float = 900.0,
        progress_s: float = 10.0,
        on_progress: Callable[[ArchiveProgress], None] = lambda p: log.info("%s", p.line()),
    ) -> None:
        self.root = root
        self.consumer = consumer
        self.kinds = dict(kinds)
        self.metrics = metrics
        self.flush_records = flush_records
        self.flush_interval_s = flush_interval_s
        self.progress_s = progress_s
        self.on_progress = on_progress
        self.progress = ArchiveProgress()
        self._batches: dict[Part, _Batch] = {}
        self._done: dict[Part, int] = {}
        self._ended: set[Part] = set()  # partitions read to their end (a partition-end event)
        self._oldest = 0.0
        layout.clean_tmp(root)
        consumer.subscribe(sorted(self.kinds), on_assign=self._assigned, on_revoke=self._revoked)

    # -- rebalancing: flush what we own before it moves, read the archive when it comes ------
    def _revoked(self, consumer: Consumer, revoked: list[TopicPartition]) -> None:
        self.flush()
        for tp in revoked:
            self._done.pop((tp.topic, tp.partition), None)
            self._ended.discard((tp.topic, tp.partition))

    def _assigned(self, consumer: Consumer, assigned: list[TopicPartition]) -> None:
        for topic in {tp.topic for tp in assigned}:
            archived = layout.archived_offsets(self.root, self.kinds[topic], topic, repair=True)
            for tp in assigned:
                if tp.topic == topic:
                    self._done[(topic, tp.partition)] = archived.get(tp.partition, -1)

    # -- reading ---------------------------------------------------------------------------
    def poll(self) -> int:
        """One poll: decode and buffer what arrived; returns how many records arrived."""
        arrived = 0
        for message in self.consumer.consume(num_messages=MAX_POLL_RECORDS, timeout=POLL_S):
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            if topic is None or partition is None:
                continue  # a client-level event, not a record of a partition
            part = (topic, partition)
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self._ended.add(part)
                    continue
                raise ArchiveError(f"reading {part[0]} partition {part[1]} failed: {error}")
            if offset is None:
                continue
            arrived += 1
            self._ended.discard(part)
            kind = self.kinds[topic]
            if offset <= self._done.get(part, -1):
                self.progress.skipped[kind] += 1
                continue
            self._add(part, kind, offset, message.value())
        return arrived

    def _add(self, part: Part, kind: str, offset: int, value: bytes | None) -> None:
        batch = self._batches.get(part)
        if batch is None:
            batch = self._batches[part] = _Batch(kind, first=offset)
            self._oldest = self._oldest or time.monotonic()
        batch.last = offset
        batch.count += 1
        decode = decode_score if kind == layout.SCORES else decode_label
        try:
            if value is None:
                raise ValueError("the record has no value")
            record: ScoreRecord | LabelRecord = decode(value)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            batch.bad.append(
                BadRecord(topic=part[0], partition=part[1], offset=offset, problem=problem_of(exc))
            )
            batch.values.append(value or b"")
            return
        moment = record.scored_at if isinstance(record, ScoreRecord) else record.label_time
        # Arrow reads one JSON value per line; a newline outside a string is only whitespace.
        batch.good.append((layout.day_of(moment), value.replace(b"\n", b" "), offset))
        if len(batch.good) >= CHUNK:
            batch.chunk(part[1])

    def buffered(self) -> int:
        return sum(batch.count for batch in self._batches.values())

    def due(self) -> bool:
        """Whether the buffered records should be written now."""
        if not self._batches:
            return False
        age = time.monotonic() - self._oldest
        return self.buffered() >= self.flush_records or age >= self.flush_interval_s

    # -- writing ---------------------------------------------------------------------------
    def flush(self) -> None:
        """Write every buffered batch durably, then commit the offsets after them."""
        if not self._batches:
            return
        offsets: list[TopicPartition] = []
        for part, batch in sorted(self._batches.items()):
            self._write(part, batch)
            self._done[part] = batch.last
            offsets.append(TopicPartition(part[0], part[1], batch.last + 1))
        self._batches.clear()
        self._oldest = 0.0
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The files are in place: whoever archives these partitions next skips them.
            log.warning("archiver: committing offsets failed (%s); the archive has them", exc)
        else:
            self.metrics.last_commit.set(time.time())

    def _write(self, part: Part, batch: _Batch) -> None:
        batch.chunk(part[1])
        days = sorted(batch.tables)
        parts = len(days) + (1 if batch.bad else 0)
        topic, partition = part
        for day in days:
            table = layout.concat(batch.tables[day])
            name = layout.part_name(topic, partition, batch.first, batch.last, parts, "parquet")
            layout.write_parquet(layout.day_dir(self.root, batch.kind, day) / name, table)
            self.progress.archived[batch.kind] += table.num_rows
            self.metrics.records.labels(topic=topic, outcome="archived").inc(table.num_rows)
            self.progress.files += 1
        if batch.bad:
            name = layout.part_name(topic, partition, batch.first, batch.last, parts, "jsonl")
            lines = b"".join(
                orjson.dumps(
                    {
                        "topic": bad.topic,
                        "partition": bad.partition,
                        "offset": bad.offset,
                        "problem": bad.problem,
                        "value": value.decode("utf-8", "replace"),
                    }
                )
                + b"\n"
                for bad, value in zip(batch.bad, batch.values, strict=True)
            )
            path = self.root / batch.kind / layout.DEAD_LETTER / name
            layout.write_atomic(path, lambda tmp: tmp.write_bytes(lines))
            self.progress.refused[batch.kind] += len(batch.bad)
            self.metrics.records.labels(topic=topic, outcome="refused").inc(len(batch.bad))
            self.progress.files += 1

    # -- the loop ----------------------------------------------------------------------------
    def lag(self) -> int:
        """Records on the assigned partitions not yet read (per topic in the metrics), from
        the high watermarks of the last fetches."""
        per_topic: Counter[str] = Counter()
        assigned = self.consumer.assignment()
        for tp in self.consumer.position(assigned) if assigned else ():
            _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0 and tp.offset >= 0:
                per_topic[tp.topic] += max(high - tp.offset, 0)
        for topic in self.kinds:
            self.metrics.lag.labels(topic=topic).set(per_topic[topic])
        self.progress.lag = sum(per_topic.values())
        return self.progress.lag

    def caught_up(self) -> bool:
        """Every assigned partition has been read to its end."""
        assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        return bool(assigned) and assigned <= self._ended

    def run(
        self, *, once: bool, stop: Callable[[], bool] = lambda: False, join_timeout_s: float = 60.0
    ) -> ArchiveProgress:
        """Archive until ``stop()`` (or, with ``once``, until every partition is caught up);
        the buffered records are written and committed before returning.

        Raises :class:`ArchiveError` when ``once`` and no partition is assigned within
        ``join_timeout_s`` (another archiver of the group holds them all, or the broker does
        not answer group requests).
        """
        last_report = started = time.monotonic()
        try:
            while not stop():
                arrived = self.poll()
                self.metrics.polled()
                if once and not self.consumer.assignment():
                    if time.monotonic() - started > join_timeout_s:
                        raise ArchiveError(
                            f"no partition of {', '.join(sorted(self.kinds))} was assigned to "
                            f"this archiver within {join_timeout_s:g}s"
                        )
                    continue
                if self.due():
                    self.flush()
                if time.monotonic() - last_report >= self.progress_s:
                    self.lag()
                    self.on_progress(self.progress)
                    last_report = time.monotonic()
                if once and arrived == 0 and self.caught_up():
                    break
            self.flush()
        finally:
            self.lag()
        return self.progress


def group_consumer(settings: ArchiveSettings) -> Consumer:
    """A consumer in the archiver's group (not yet subscribed) for the scores and labels topics.

    Raises :class:`ArchiveError` naming the address when no broker answers, or the topic when
    one does not exist (subscribing to it would wait forever).
    """
    servers = settings.kafka_servers
    where = f"cannot reach Kafka at {','.join(servers)} to archive"
    try:
        any_listening(servers, where)
    except AnalysisError as exc:
        raise ArchiveError(str(exc)) from None
    consumer = Consumer(
        {
            "bootstrap.servers": ",".join(servers),
            "group.id": settings.archive_group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "allow.auto.create.topics": False,
            "session.timeout.ms": settings.archive_session_timeout_ms,
            "heartbeat.interval.ms": settings.archive_heartbeat_interval_ms,
            "max.poll.interval.ms": settings.archive_max_poll_interval_ms,
            "logger": _LIBRDKAFKA_LOG,
        }
    )
    try:
        existing = consumer.list_topics(timeout=10).topics
    except KafkaException as exc:
        consumer.close()
        raise ArchiveError(f"{where}: {exc}") from exc
    missing = [t for t in (settings.scores_topic, settings.labels_topic) if t not in existing]
    if missing:
        consumer.close()
        raise ArchiveError(
            f"topic {', '.join(missing)} does not exist on Kafka at {','.join(servers)} "
            "(shadowline stack up creates the scores and labels topics)"
        )
    return consumer


# librdkafka's own log lines go through Python logging rather than straight to stderr.
_LIBRDKAFKA_LOG = logging.getLogger("shadowline.archiver.librdkafka")
