"""The Kafka sink, scorer side: score records leave the process without making anyone wait.

``publish`` (called by the shadow dispatcher's thread) appends to a bounded deque; when it is
full the record is dropped and counted (``shadowline_kafka_dropped_total``).  A writer thread
frames what has accumulated and writes it to the producer process (:mod:`service.producer`)
over a pipe; the producer owns the kafka-python client, so its per-record Python work runs on
the other core instead of holding this process's GIL.  When the broker is slow or down the
producer stops reading, the pipe and then the deque fill, and records are dropped, never
queued without bound.  The producer's counts (sent, failed, restarts) come back over the pipe
and are added to this process's metrics.  A producer process that dies is started again.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Protocol

from service.metrics import ServiceMetrics
from service.producer import (
    ProducerConfig,
    Stats,
    frame,
    producer_process_main,
    run_producer_loop,
)

log = logging.getLogger(__name__)
_WRITE_BATCH = 512
RESPAWN_INTERVAL_S = 5.0
# How long the writer waits for records when idle: batches records for the producer and keeps
# an idle scorer from waking 500 times a second (measured: 5% of a core at 2 ms).
_IDLE_WAIT_S = 0.02


class RecordSink(Protocol):
    """Where score records go.  ``publish`` must never block."""

    def publish(self, key: bytes, value: bytes) -> None: ...

    def start(self) -> None: ...

    def close(self, timeout_s: float = 5.0) -> None: ...


class KafkaSink:
    """Bounded, non-blocking publisher of score records (key = transaction id).

    ``buffer_records`` bounds what is held: half in this process's deque, half in flight in
    the producer.  ``in_process=True`` runs the producer loop in a thread instead of a child
    process (tests; same code, same pipe).
    """

    def __init__(
        self,
        config: ProducerConfig,
        metrics: ServiceMetrics,
        *,
        buffer_records: int,
        in_process: bool = False,
    ) -> None:
        self.config = config
        self._metrics = metrics
        self._max_queued = max(1, buffer_records // 2)
        self._queue: collections.deque[tuple[bytes, bytes]] = collections.deque()
        self._in_process = in_process
        self._stats = Stats()
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._conn: Connection | None = None
        self._child: BaseProcess | threading.Thread | None = None
        self._next_spawn = 0.0

    @property
    def connected(self) -> bool:
        """The producer's last report: it has a broker connection and deliveries succeed."""
        return self._stats.connected

    def publish(self, key: bytes, value: bytes) -> None:
        """Queue one record, or drop and count it when the buffer is full.  Never blocks."""
        if len(self._queue) >= self._max_queued:
            self._metrics.kafka_dropped.inc()
            return
        self._queue.append((key, value))

    def start(self) -> None:
        if self._writer is None:
            self._spawn()
            self._writer = threading.Thread(target=self._run, name="kafka-sink", daemon=True)
            self._writer.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Hand over what is queued, let the producer flush (up to ``timeout_s``), stop it."""
        self._stop.set()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.join(timeout_s)
        conn, child = self._conn, self._child
        if conn is not None and not (writer is not None and writer.is_alive()):
            # (A writer still blocked on a full pipe owns the connection: no stop signal then,
            # the process is terminated below.)
            with contextlib.suppress(OSError, ValueError):
                conn.send_bytes(b"")  # the stop signal
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and _alive(child):
                self._read_stats(0.05)
            self._read_stats(0)
        if conn is not None:
            conn.close()
        if isinstance(child, BaseProcess):
            if child.is_alive():
                child.terminate()
            child.join(1.0)
        self._conn = self._child = None

    # -- the writer thread ----------------------------------------------------------------
    def _spawn(self) -> None:
        if self._conn is not None:  # a dead producer's pipe
            self._conn.close()
        if isinstance(self._child, BaseProcess):
            self._child.join(0.1)
        parent, child_end = multiprocessing.Pipe(duplex=True)
        child: BaseProcess | threading.Thread
        if self._in_process:
            child = threading.Thread(
                target=run_producer_loop, args=(child_end, self.config), daemon=True
            )
        else:
            # spawn, not fork: this process has threads (onnxruntime, the dispatcher).
            child = multiprocessing.get_context("spawn").Process(
                target=producer_process_main, args=(child_end, self.config), name="kafka-producer"
            )
        child.start()
        if isinstance(child, BaseProcess):
            child_end.close()
        self._conn, self._child = parent, child
        self._stats = Stats()  # a new producer counts from zero

    def _run(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                if self._stop.is_set():
                    return
                self._read_stats(_IDLE_WAIT_S)
                continue
            batch = [queue.popleft() for _ in range(min(len(queue), _WRITE_BATCH))]
            if not self._write(frame(batch)):
                self._metrics.kafka_dropped.inc(len(batch))
            self._read_stats(0)

    def _write(self, blob: bytes) -> bool:
        """Hand ``blob`` to the producer; restart the producer if it died."""
        conn = self._conn
        if conn is None or not _alive(self._child):
            if time.monotonic() >= self._next_spawn:
                log.error("kafka sink: the producer process is gone; starting a new one")
                self._next_spawn = time.monotonic() + RESPAWN_INTERVAL_S
                self._spawn()
            return False
        try:
            conn.send_bytes(blob)  # blocks while the producer holds back (broker down)
        except (OSError, ValueError):
            return False
        return True

    def _read_stats(self, timeout_s: float) -> None:
        conn = self._conn
        try:
            while conn is not None and conn.poll(timeout_s):
                self._apply(Stats.unpack(conn.recv_bytes()))
                timeout_s = 0
        except (EOFError, OSError, ValueError):
            return

    def _apply(self, stats: Stats) -> None:
        old, self._stats = self._stats, stats
        metrics = self._metrics
        if stats.sent > old.sent:
            metrics.kafka_sent.inc(stats.sent - old.sent)
        if stats.failed > old.failed:
            metrics.kafka_failed.inc(stats.failed - old.failed)
        if stats.restarts > old.restarts:
            metrics.kafka_restarts.inc(stats.restarts - old.restarts)


def _alive(child: BaseProcess | threading.Thread | None) -> bool:
    return child is not None and child.is_alive()
