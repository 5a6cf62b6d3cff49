"""Kafka for shadow analysis: read the scores and labels topics whole, send labels.

Reading uses no consumer group: the analysis commits nothing, so it never moves another
consumer's offsets and can run any number of times.  It assigns every partition, seeks to the
beginning and stops at the end each partition had when reading began, so a topic that keeps
growing still terminates.  That end is the larger of ``end_offsets()`` and the high watermark of
the first fetch: a Kafka-protocol broker may report the start of its last batch plus one as
the end offset, which alone would cut the last batch short.  A deadline bounds the whole read.

A record that does not decode is skipped and reported (``on_bad``, by default a log warning)
naming its topic, partition and offset; it never stops the analysis.

``options`` are the Kafka security settings (``registry.connections.kafka_options``), given to
every client made here.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from pydantic import ValidationError

from registry.manifest import describe_validation_error
from registry.records import LabelRecord, encode
from retrain.errors import AnalysisError

T = TypeVar("T")
log = logging.getLogger(__name__)
POLL_MS = 200
CONNECT_TIMEOUT_S = 3.0
BOOTSTRAP_TIMEOUT_MS = 5000
MAX_POLL_RECORDS = 5000


@dataclass(frozen=True)
class BadRecord:
    """A record that was skipped because it does not decode."""

    topic: str
    partition: int
    offset: int
    problem: str

    def __str__(self) -> str:
        return f"{self.topic} partition {self.partition} offset {self.offset}: {self.problem}"


def _warn(bad: BadRecord) -> None:
    log.warning("skipped a record that does not decode: %s", bad)


def _connect(
    servers: Sequence[str], purpose: str, options: Mapping[str, Any] | None
) -> KafkaConsumer:
    where = f"cannot reach Kafka at {','.join(servers)} {purpose}"
    any_listening(servers, where)
    try:
        return KafkaConsumer(
            bootstrap_servers=list(servers),
            group_id=None,
            enable_auto_commit=False,
            allow_auto_create_topics=False,
            max_poll_records=MAX_POLL_RECORDS,
            bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
            **(options or {}),
        )
    except KafkaError as exc:
        raise AnalysisError(f"{where}: {exc}") from exc


def any_listening(servers: Sequence[str], where: str) -> None:
    """Fail at once, naming the address, when no bootstrap server accepts a connection.

    The Kafka client would retry for its bootstrap timeout and then leave its sockets open.
    """
    problems: list[str] = []
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            problems.append(f"{server}: not host:port")
            continue
        try:
            with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
                return
        except OSError as exc:
            problems.append(f"{server}: {exc.strerror or exc}")
    raise AnalysisError(f"{where}: {'; '.join(problems)}")


def _partitions(consumer: KafkaConsumer, servers: Sequence[str], topic: str) -> list[int]:
    if topic not in consumer.topics():
        raise AnalysisError(
            f"topic {topic} does not exist on Kafka at {','.join(servers)} "
            "(shadowline stack up creates the scores and labels topics)"
        )
    return sorted(consumer.partitions_for_topic(topic) or ())


def problem_of(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return f"invalid {exc.title}: {describe_validation_error(exc)}"
    return f"{type(exc).__name__}: {exc}"


def read_topic(
    servers: Sequence[str],
    topic: str,
    decode: Callable[[bytes], T],
    *,
    timeout_s: float = 30.0,
    on_bad: Callable[[BadRecord], None] = _warn,
    options: Mapping[str, Any] | None = None,
    start: Mapping[int, int] | None = None,
) -> Iterator[T]:
    """Every record of ``topic`` from the beginning, decoded (in offset order per partition).

    ``start`` maps partitions to the first offset to read (the archive's tail starts after
    what is archived); partitions it does not name are read from the beginning.

    Raises :class:`AnalysisError` when Kafka cannot be reached, the topic does not exist, or
    the end is not reached within ``timeout_s`` (naming the partitions still behind).
    """
    consumer = _connect(servers, f"to read {topic}", options)
    try:
        parts = [TopicPartition(topic, p) for p in _partitions(consumer, servers, topic)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        begins = consumer.beginning_offsets(parts)
        for tp in parts:
            if start is not None and start.get(tp.partition, 0) > begins[tp]:
                consumer.seek(tp, start[tp.partition])
        # An empty partition needs no fetch; the others end at their first high watermark
        # (an empty fetch from a start offset reports one too).
        target: dict[TopicPartition, int | None] = {
            tp: ends[tp] if ends[tp] <= begins[tp] else None for tp in parts
        }
        deadline = time.monotonic() + timeout_s
        while not _done(consumer, target):
            if time.monotonic() >= deadline:
                raise AnalysisError(_behind(topic, consumer, target, ends, timeout_s))
            polled = consumer.poll(timeout_ms=POLL_MS)
            for tp in parts:
                if target[tp] is None and consumer.highwater(tp) is not None:
                    target[tp] = max(ends[tp], int(consumer.highwater(tp)))
            for tp, messages in polled.items():
                for message in messages:
                    limit = target[tp]
                    if limit is not None and message.offset >= limit:
                        continue  # written after the read began
                    try:
                        if message.value is None:
                            raise ValueError("the record has no value")
                        record = decode(message.value)
                    except ValueError as exc:  # pydantic's ValidationError is a ValueError
                        on_bad(
                            BadRecord(
                                topic=topic,
                                partition=tp.partition,
                                offset=message.offset,
                                problem=problem_of(exc),
                            )
                        )
                        continue
                    yield record
    except KafkaError as exc:
        raise AnalysisError(f"reading topic {topic} failed: {exc}") from exc
    finally:
        consumer.close()


def _done(consumer: KafkaConsumer, target: dict[TopicPartition, int | None]) -> bool:
    return all(limit is not None and consumer.position(tp) >= limit for tp, limit in target.items())


def _behind(
    topic: str,
    consumer: KafkaConsumer,
    target: dict[TopicPartition, int | None],
    ends: dict[TopicPartition, int],
    timeout_s: float,
) -> str:
    lagging = ", ".join(
        f"partition {tp.partition} at offset {consumer.position(tp)} of {limit or ends[tp]}"
        for tp, limit in target.items()
        if limit is None or consumer.position(tp) < limit
    )
    return f"reading topic {topic} did not reach its end within {timeout_s:g}s ({lagging})"


def send_labels(
    servers: Sequence[str],
    topic: str,
    labels: Sequence[LabelRecord],
    *,
    timeout_s: float = 30.0,
    options: Mapping[str, Any] | None = None,
) -> int:
    """Produce ``labels`` to ``topic`` keyed by transaction id; returns how many were sent.

    Every send is confirmed by the broker before returning; :class:`AnalysisError` otherwise.
    The topic must exist: a Kafka-protocol broker may acknowledge writes to a missing topic
    and drop them, so this checks first instead of losing labels silently.
    """
    consumer = _connect(servers, f"to send labels to {topic}", options)
    try:
        _partitions(consumer, servers, topic)
    finally:
        consumer.close()
    producer: KafkaProducer | None = None
    try:
        producer = KafkaProducer(
            bootstrap_servers=list(servers), acks="all", linger_ms=20, **(options or {})
        )
        futures = [
            producer.send(topic, key=label.transaction_id.encode(), value=encode(label))
            for label in labels
        ]
        producer.flush(timeout=timeout_s)
        for future in futures:
            future.get(timeout=timeout_s)
    except KafkaError as exc:
        raise AnalysisError(f"sending labels to topic {topic} failed: {exc}") from exc
    finally:
        if producer is not None:
            producer.close()
    return len(labels)
