"""The Kafka sink: score records to the scores topic without ever making a request wait.

``publish`` (called by the shadow dispatcher's thread) only appends to a bounded queue; a full
queue drops the record and counts it (``shadowline_kafka_dropped_total``).  At most
``buffer_records`` records are held in all: half queued, half in flight inside the producer.
A sender thread owns the kafka-python producer: it creates it once the broker accepts TCP
connections, sends each record (acks=1, no idempotence: an idempotent producer never recovers
from a broker restart), and counts acknowledgements and failures from the delivery callbacks.
When the in-flight half is full the sender waits, the queue fills and drops, so memory stays
bounded while the broker is down.  When the broker has failed every delivery for
``restart_after_s`` the producer is closed and a new one created (it re-reads metadata).
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from typing import Any, Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError

from service.metrics import ServiceMetrics

log = logging.getLogger(__name__)


class RecordSink(Protocol):
    """Where score records go.  ``publish`` must never block."""

    def publish(self, key: bytes, value: bytes) -> None: ...

    def start(self) -> None: ...

    def close(self, timeout_s: float = 5.0) -> None: ...


def broker_accepts(servers: list[str], timeout_s: float = 1.0) -> bool:
    """True if one bootstrap server accepts a TCP connection.

    Checked before creating a client: kafka-python retries a refused bootstrap and leaks the
    socket (a ResourceWarning), and its constructor blocks until it has bootstrapped.
    """
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=timeout_s).close()
        except OSError:
            continue
        return True
    return False


class KafkaSink:
    """Bounded, non-blocking publisher of score records (key = transaction id)."""

    def __init__(
        self,
        servers: list[str],
        topic: str,
        metrics: ServiceMetrics,
        *,
        buffer_records: int,
        linger_ms: int = 5,
        delivery_timeout_ms: int = 30_000,
        restart_after_s: float = 10.0,
    ) -> None:
        self.topic = topic
        self._servers = servers
        self._metrics = metrics
        # Half the buffer waits in front of the producer, half may be in flight inside it.
        queued = max(1, buffer_records // 2)
        self._queue: queue.Queue[tuple[bytes, bytes]] = queue.Queue(maxsize=queued)
        self._max_in_flight = max(1, buffer_records - queued)
        self._linger_ms = linger_ms
        self._delivery_timeout_ms = delivery_timeout_ms
        self._restart_after_s = restart_after_s
        self._lock = threading.Lock()
        self._in_flight = 0
        self._generation = 0
        self._last_ok = time.monotonic()
        self._failing = False
        self._producer: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def connected(self) -> bool:
        """True while a producer exists and its last delivery did not fail."""
        return self._producer is not None and not self._failing

    def publish(self, key: bytes, value: bytes) -> None:
        """Queue one record, or drop and count it when the buffer is full.  Never blocks."""
        try:
            self._queue.put_nowait((key, value))
        except queue.Full:
            self._metrics.kafka_dropped.inc()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kafka-sink", daemon=True)
            self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued (up to ``timeout_s``), then close the producer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self._close_producer(timeout_s)

    # -- the sender thread ----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                key, value = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    return
                self._maybe_restart()
                continue
            while not self._ensure_producer() or self._in_flight >= self._max_in_flight:
                # No broker yet, or too much in flight: hold this record; the queue behind it
                # fills and drops (counted) rather than growing.
                if self._stop.is_set():
                    return
                self._maybe_restart()
                time.sleep(0.05)
            self._send(key, value)

    def _send(self, key: bytes, value: bytes) -> None:
        generation = self._generation
        with self._lock:
            self._in_flight += 1
        try:
            future = self._producer.send(self.topic, key=key, value=value)
        except KafkaError as exc:  # buffer full (max_block_ms) or no metadata for the topic
            self._delivered(generation, ok=False, error=exc)
            return
        future.add_callback(lambda _meta: self._delivered(generation, ok=True))
        future.add_errback(lambda exc: self._delivered(generation, ok=False, error=exc))

    def _delivered(self, generation: int, *, ok: bool, error: object = None) -> None:
        with self._lock:
            # Records of a closed producer were already written off by _close_producer.
            if generation == self._generation:
                self._in_flight -= 1
        if ok:
            self._last_ok = time.monotonic()
            self._failing = False
            self._metrics.kafka_sent.inc()
        else:
            if not self._failing:
                log.warning("kafka sink: delivery to %s failed: %s", self.topic, error)
            self._failing = True
            self._metrics.kafka_failed.inc()

    def _ensure_producer(self) -> bool:
        if self._producer is not None:
            return True
        if not broker_accepts(self._servers):
            return False
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=self._servers,
                acks=1,
                enable_idempotence=False,
                linger_ms=self._linger_ms,
                max_block_ms=100,  # only this thread waits; a full buffer then fails the send
                delivery_timeout_ms=self._delivery_timeout_ms,
                request_timeout_ms=min(10_000, self._delivery_timeout_ms),
                reconnect_backoff_max_ms=1000,
                bootstrap_timeout_ms=2000,
            )
        except (KafkaError, OSError) as exc:
            log.warning("kafka sink: cannot create a producer for %s: %s", self._servers, exc)
            return False
        self._last_ok = time.monotonic()
        self._failing = False
        self._metrics.kafka_restarts.inc()
        return True

    def _maybe_restart(self) -> None:
        stale = time.monotonic() - self._last_ok > self._restart_after_s
        if self._producer is not None and self._failing and stale:
            log.warning("kafka sink: no delivery for %.0fs; recreating the producer",
                        self._restart_after_s)  # fmt: skip
            self._close_producer(0.0)

    def _close_producer(self, timeout_s: float) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with self._lock:
                self._generation += 1
                self._in_flight = 0
            try:
                producer.close(timeout=timeout_s)
            except KafkaError as exc:  # closing a broken producer must not kill the thread
                log.warning("kafka sink: closing the producer failed: %s", exc)
