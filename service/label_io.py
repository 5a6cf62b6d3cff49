"""The I/O of the labels intake: a Redis dedupe window and a Kafka producer for the labels topic.

:class:`LabelDedupe` remembers each label taken, by (transaction id, label time), for a bounded
window (a key with a TTL each).  A batch first *claims* its labels (``SET NX`` of a ``pending``
value with a short TTL), is produced, then *confirms* them (the content, for the whole
window); a failed write releases its claims, so the sender's retry is written.  A claim held by
another request means the same label is being written right now.

:class:`LabelProducer` is a kafka-python producer of its own (acks from every in-sync replica),
created on the first batch, so a scorer that never receives labels never starts one; it runs
in the thread pool, never on the event loop.  Both raise
:class:`service.errors.LabelsUnavailable` naming what failed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from registry.constants import label_seen_key
from registry.records import LabelRecord, encode
from service.errors import LabelsUnavailable
from service.producer import broker_accepts, close_client

log = logging.getLogger(__name__)
PENDING = "pending:"


def content(label: LabelRecord) -> str:
    """What a repeat of the same (transaction id, label time) must carry to be the same label."""
    return f"{'fraud' if label.is_fraud else 'legitimate'} from {label.source}"


def seen_key(label: LabelRecord) -> str:
    return label_seen_key(label.transaction_id, label.label_time)


class LabelDedupe:
    """Labels taken within the last ``window_s`` seconds, in Redis (shared by every replica).

    ``claim_s`` bounds how long a claim of a request that died mid-write blocks a retry; it is
    longer than the broker's acknowledgement timeout.
    """

    def __init__(self, client: redis.Redis, *, window_s: int, claim_s: float) -> None:
        self._redis = client
        self._window_s = window_s
        self._claim_ms = int(claim_s * 1000)

    def claim(self, labels: Mapping[str, LabelRecord]) -> tuple[list[str], dict[str, str | None]]:
        """Claim each key of ``labels`` not held yet.  Returns the keys claimed now, and for
        the others what they hold (a content, ``pending:`` and a content, or None when the
        holder's claim ended in between)."""
        try:
            pipe = self._redis.pipeline(transaction=False)
            for key, label in labels.items():
                pipe.set(key, PENDING + content(label), nx=True, px=self._claim_ms)
            results = pipe.execute()
            claimed = [key for key, ok in zip(labels, results, strict=True) if ok]
            held = [key for key, ok in zip(labels, results, strict=True) if not ok]
            values: list[Any] = list(self._redis.mget(held)) if held else []
        except redis.RedisError as exc:
            raise LabelsUnavailable(f"Redis (the dedupe window) failed: {exc}") from exc
        return claimed, {key: _text(value) for key, value in zip(held, values, strict=True)}

    def release(self, keys: Sequence[str]) -> None:
        """Drop claims of a batch that was not written (its retry must be written)."""
        if not keys:
            return
        try:
            self._redis.delete(*keys)
        except redis.RedisError as exc:  # the claims expire after claim_s anyway
            log.warning("labels: releasing %d claims failed (%s); they expire", len(keys), exc)

    def confirm(self, labels: Mapping[str, LabelRecord]) -> bool:
        """Remember written labels for the window; False (logged) when Redis failed: then a
        retry after the claims expire writes them again (the analysis keeps one label per
        transaction, so a repeat changes no result)."""
        try:
            pipe = self._redis.pipeline(transaction=False)
            for key, label in labels.items():
                pipe.set(key, content(label), ex=self._window_s)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("labels: %d written labels not remembered (%s)", len(labels), exc)
            return False
        return True

    def close(self) -> None:
        self._redis.close()


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class LabelProducer:
    """Produces labels to ``topic``, keyed by transaction id, and waits for the broker."""

    def __init__(
        self,
        servers: Sequence[str],
        topic: str,
        *,
        timeout_s: float,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._servers = list(servers)
        self._topic = topic
        self._timeout_s = timeout_s
        # The Kafka security settings (registry.connections.kafka_options).
        self._options = dict(client_options or {})
        self._lock = threading.Lock()
        self._producer: Any = None

    def send(self, labels: Sequence[LabelRecord]) -> None:
        """Every label acknowledged by the broker, or :class:`LabelsUnavailable` (some may
        have been written: the sender's retry is idempotent within the dedupe window)."""
        from kafka.errors import KafkaError

        try:
            producer = self._ensure()
            futures = [
                producer.send(self._topic, key=label.transaction_id.encode(), value=encode(label))
                for label in labels
            ]
            producer.flush(timeout=self._timeout_s)
            for future in futures:
                future.get(timeout=self._timeout_s)
        except (KafkaError, OSError) as exc:
            self._reset()  # a broker restart leaves a client that never recovers: start anew
            raise LabelsUnavailable(
                f"the labels topic {self._topic} did not acknowledge within "
                f"{self._timeout_s:g} s ({type(exc).__name__}: {exc})"
            ) from exc

    def _ensure(self) -> Any:
        with self._lock:
            if self._producer is not None:
                return self._producer
            if not broker_accepts(self._servers):
                raise LabelsUnavailable(f"no Kafka broker answers at {','.join(self._servers)}")
            self._check_topic()
            from kafka import KafkaProducer

            timeout_ms = int(self._timeout_s * 1000)
            self._producer = KafkaProducer(
                bootstrap_servers=self._servers,
                acks="all",
                enable_idempotence=False,  # an idempotent producer never recovers a restart
                linger_ms=5,
                max_block_ms=timeout_ms,
                request_timeout_ms=timeout_ms,
                delivery_timeout_ms=timeout_ms + 5,
                reconnect_backoff_max_ms=1000,
                bootstrap_timeout_ms=timeout_ms,
                allow_auto_create_topics=False,
                **self._options,
            )
            return self._producer

    def _check_topic(self) -> None:
        """:class:`LabelsUnavailable` unless the topic exists.  A Kafka-protocol broker may
        acknowledge writes to a missing topic and drop them, or create it (with its own
        partition count) when a producer asks for its partitions; listing every topic does
        neither."""
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(
            bootstrap_servers=self._servers,
            group_id=None,
            enable_auto_commit=False,
            allow_auto_create_topics=False,
            bootstrap_timeout_ms=int(self._timeout_s * 1000),
            **self._options,
        )
        try:
            topics = consumer.topics()
        finally:
            consumer.close()
        if self._topic not in topics:
            raise LabelsUnavailable(
                f"the labels topic {self._topic} does not exist on Kafka at "
                f"{','.join(self._servers)} (shadowline stack up creates it)"
            )

    def _reset(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            close_client(producer)

    def close(self) -> None:
        """Close the client (what it still holds is aborted)."""
        self._reset()
