"""The Kafka producer loop: runs in a child process of the scorer (or a thread, in tests).

kafka-python spent 60-120 us of Python per record (measured on the 2-core machine; 29 us once
the ``crc32c`` C package replaced its pure-Python checksum); in the scorer's process that time
holds the GIL, and the event loop paid for it: 101 us per request without the producer, 290 us
with it.  So the producer lives in a process of its own and the scorer only hands it framed
batches of ``(key, value)`` over a pipe (:mod:`service.sink`).

Protocol on the duplex pipe: the parent sends ``frame(records)`` blobs and, to stop, an empty
blob; the child sends ``Stats`` snapshots (cumulative counts) every ``stats_interval_s`` and once
more before it exits.  When ``max_in_flight`` records wait for acknowledgement the loop stops
reading, the pipe fills and the parent drops (and counts) what it cannot hand over.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger(__name__)
_HEADER = struct.Struct("<II")
_STATS = struct.Struct("<qqq?")


@dataclass(frozen=True)
class ProducerConfig:
    """What the producer loop needs; picklable, so it can be handed to a spawned process."""

    servers: tuple[str, ...]
    topic: str
    max_in_flight: int
    linger_ms: int = 50
    delivery_timeout_ms: int = 30_000
    restart_after_s: float = 10.0
    stats_interval_s: float = 0.5


@dataclass(frozen=True)
class Stats:
    """Cumulative counts of one producer loop (sent to the parent as 25 bytes, not pickled)."""

    sent: int = 0
    failed: int = 0
    restarts: int = 0
    connected: bool = False

    def pack(self) -> bytes:
        return _STATS.pack(self.sent, self.failed, self.restarts, self.connected)

    @classmethod
    def unpack(cls, blob: bytes) -> Stats:
        return cls(*_STATS.unpack(blob))


def frame(records: list[tuple[bytes, bytes]]) -> bytes:
    """Pack records as length-prefixed key/value pairs."""
    parts: list[bytes] = []
    for key, value in records:
        parts += (_HEADER.pack(len(key), len(value)), key, value)
    return b"".join(parts)


def unframe(blob: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The records of one :func:`frame` blob, in order."""
    view, offset, end = memoryview(blob), 0, len(blob)
    while offset < end:
        klen, vlen = _HEADER.unpack_from(view, offset)
        offset += _HEADER.size
        key = bytes(view[offset : offset + klen])
        offset += klen
        yield key, bytes(view[offset : offset + vlen])
        offset += vlen


def broker_accepts(servers: tuple[str, ...] | list[str], timeout_s: float = 1.0) -> bool:
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


class ProducerLoop:
    """Sends the records arriving on ``conn`` to Kafka; reports :class:`Stats` back."""

    def __init__(self, conn: Connection, config: ProducerConfig) -> None:
        self._conn = conn
        self._config = config
        self._lock = threading.Lock()
        self._producer: Any = None
        self._generation = 0
        self._in_flight = 0
        self._sent = self._failed = self._restarts = 0
        self._last_ok = time.monotonic()
        self._failing = False
        self._last_stats = 0.0
        self._parent_pid = os.getppid()

    def run(self) -> None:
        """Until the parent sends an empty blob or goes away; then flush and report."""
        try:
            while self._step():
                pass
        finally:
            self._close_producer(timeout_s=5.0)
            self._report(force=True)

    def _step(self) -> bool:
        if os.getppid() != self._parent_pid:
            return False  # the scorer died without saying goodbye (SIGKILL): stop too
        self._report()
        self._maybe_restart()
        if not self._ensure_producer() or self._in_flight >= self._config.max_in_flight:
            time.sleep(0.05)  # hold further records in the pipe: the parent drops, counted
            return True
        try:
            if not self._conn.poll(0.1):
                return True
            blob = self._conn.recv_bytes()
        except (EOFError, OSError):
            return False  # the parent is gone
        if not blob:
            return False
        for key, value in unframe(blob):
            self._send(key, value)
        return True

    def _send(self, key: bytes, value: bytes) -> None:
        generation = self._generation
        with self._lock:
            self._in_flight += 1
        try:
            future = self._producer.send(self._config.topic, key=key, value=value)
        except Exception as exc:  # KafkaError (buffer full, no metadata) or a closed producer
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
                self._sent += 1
            else:
                self._failed += 1
        if ok:
            self._last_ok = time.monotonic()
            self._failing = False
        else:
            if not self._failing:
                log.warning("kafka producer: delivery to %s failed: %s", self._config.topic, error)
            self._failing = True

    def _ensure_producer(self) -> bool:
        if self._producer is not None:
            return True
        if not broker_accepts(self._config.servers):
            return False
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        config = self._config
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=list(config.servers),
                acks=1,
                enable_idempotence=False,  # an idempotent producer never recovers a restart
                linger_ms=config.linger_ms,
                batch_size=256 * 1024,  # fewer sender wake-ups per record
                max_block_ms=100,
                delivery_timeout_ms=config.delivery_timeout_ms,
                request_timeout_ms=min(10_000, config.delivery_timeout_ms // 2),
                reconnect_backoff_max_ms=1000,
                bootstrap_timeout_ms=2000,
            )
        except (KafkaError, OSError) as exc:
            log.warning("kafka producer: cannot connect to %s: %s", config.servers, exc)
            return False
        self._last_ok = time.monotonic()
        self._failing = False
        self._restarts += 1
        return True

    def _maybe_restart(self) -> None:
        stale = time.monotonic() - self._last_ok > self._config.restart_after_s
        if self._producer is not None and self._failing and stale:
            log.warning("kafka producer: nothing delivered for %.0fs; recreating it",
                        self._config.restart_after_s)  # fmt: skip
            self._close_producer(timeout_s=0.0)

    def _close_producer(self, timeout_s: float) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            if timeout_s > 0:
                producer.flush(timeout=timeout_s)
        except Exception as exc:  # KafkaTimeoutError: what is left is counted as failed
            log.warning("kafka producer: flush incomplete: %s", exc)
        with self._lock:
            self._generation += 1
            self._in_flight = 0
        try:
            producer.close(timeout=0)
        except Exception as exc:  # closing a broken producer must not end the loop
            log.warning("kafka producer: close failed: %s", exc)

    def _report(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_stats < self._config.stats_interval_s:
            return
        self._last_stats = now
        stats = Stats(self._sent, self._failed, self._restarts,
                      self._producer is not None and not self._failing)  # fmt: skip
        with contextlib.suppress(OSError, ValueError):  # parent gone: nobody to report to
            self._conn.send_bytes(stats.pack())


def run_producer_loop(conn: Connection, config: ProducerConfig) -> None:
    """Run :class:`ProducerLoop` until told to stop (a thread's target, in tests)."""
    ProducerLoop(conn, config).run()


def producer_process_main(conn: Connection, config: ProducerConfig) -> None:
    """Entry point of the producer process.

    Ctrl-C and SIGTERM reach the whole process group; the producer ignores them and stops when
    the scorer says so (after its own graceful shutdown) or when the scorer is gone.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # its INFO lines are per connection
    run_producer_loop(conn, config)
