"""The Kafka sink, scorer side: score records leave the process without making anyone wait.

``publish`` (called by the shadow dispatcher's thread) appends to a deque bounded in records
and in bytes; when it is full the record is dropped and counted
(``shadowline_kafka_dropped_total``).  A writer thread frames what has accumulated and writes
it to the producer process (:mod:`service.producer`) over a pipe; the producer owns the
kafka-python client, so its per-record Python work runs on the other core instead of holding
this process's GIL.  When the broker is slow or down the producer stops reading, the pipe and
then the deque fill, and records are dropped, never queued without bound.  The producer's
counts (sent, failed, restarts) come back over the pipe and are added to this process's
metrics.  A producer process that dies is started again.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing
import signal
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as ProcessEvent
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
StopEvent = ProcessEvent | threading.Event
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_WRITE_BATCH = 512
# At most this many bytes per frame (or one record): the producer reads a frame whole, so this
# is how far its in-flight bytes may overshoot its budget.
_WRITE_BYTES = 1 << 20
DEFAULT_BUFFER_BYTES = 64 << 20
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

    ``buffer_records`` and ``buffer_bytes`` (keys plus values) bound what is held: half in this
    process's deque (including the frame the writer is handing over), half in flight in the
    producer (which may overshoot by one frame of at most 1 MiB or one record; the pipe
    between them holds a few hundred KiB more, bounded by the kernel).  ``in_process=True``
    runs the producer loop in a thread instead of a child process (tests; same code, same
    pipe).
    """

    def __init__(
        self,
        config: ProducerConfig,
        metrics: ServiceMetrics,
        *,
        buffer_records: int,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        in_process: bool = False,
    ) -> None:
        self.config = config
        self._metrics = metrics
        self._max_queued = max(1, buffer_records // 2)
        self._max_queued_bytes = max(1, buffer_bytes // 2)
        self._queued_bytes = 0
        self._lock = threading.Lock()  # the dispatcher adds bytes, the writer takes them off
        metrics.kafka_buffered_bytes.set_function(lambda: float(self.buffered_bytes))
        self._queue: collections.deque[tuple[bytes, bytes]] = collections.deque()
        self._in_process = in_process
        self._stats = Stats()
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._conn: Connection | None = None
        self._child: BaseProcess | threading.Thread | None = None
        self._child_stop: StopEvent | None = None
        self._next_spawn = 0.0

    @property
    def connected(self) -> bool:
        """The producer's last report: it has a broker connection and deliveries succeed."""
        return self._stats.connected

    @property
    def queued_bytes(self) -> int:
        """Bytes of records held in this process (queued or being handed to the producer)."""
        return self._queued_bytes

    @property
    def buffered_bytes(self) -> int:
        """Bytes held here plus the producer's last reported in-flight bytes."""
        return self._queued_bytes + self._stats.in_flight_bytes

    def publish(self, key: bytes, value: bytes) -> None:
        """Queue one record, or drop and count it when the buffer (records or bytes) is full.
        Never blocks (beyond a lock held for a few operations)."""
        size = len(key) + len(value)
        with self._lock:
            if (
                len(self._queue) >= self._max_queued
                or self._queued_bytes + size > self._max_queued_bytes
            ):
                self._metrics.kafka_dropped.inc()
                return
            self._queue.append((key, value))
            self._queued_bytes += size

    def start(self) -> None:
        if self._writer is None:
            self._spawn()
            self._writer = threading.Thread(target=self._run, name="kafka-sink", daemon=True)
            self._writer.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Hand over what is queued, let the producer flush (up to ``timeout_s``), stop it.

        A producer without a broker connection stops at once (what it holds is counted as
        failed); a producer process still running after ``timeout_s`` is killed, so closing
        never hangs on an unreachable broker (and multiprocessing's exit handler, which joins
        child processes, has nothing left to wait for).
        """
        self._stop.set()
        if self._child_stop is not None:
            self._child_stop.set()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.join(timeout_s)
        conn, child = self._conn, self._child
        if conn is not None and not (writer is not None and writer.is_alive()):
            # (A writer still blocked on a full pipe owns the connection: no stop signal then;
            # a producer process that has not stopped on the stop event is killed below.)
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
                # It ignores SIGTERM (the whole process group gets Ctrl-C and SIGTERM): kill.
                log.warning("kafka sink: the producer did not stop within %gs; killing it",
                            timeout_s)  # fmt: skip
                child.kill()
            child.join(5.0)
        self._conn = self._child = None
        self._child_stop = None

    # -- the writer thread ----------------------------------------------------------------
    def _spawn(self) -> None:
        if self._conn is not None:  # a dead producer's pipe
            self._conn.close()
        if isinstance(self._child, BaseProcess):
            self._child.join(0.1)
        parent, child_end = multiprocessing.Pipe(duplex=True)
        child: BaseProcess | threading.Thread
        stop: StopEvent
        if self._in_process:
            stop = threading.Event()
            child = threading.Thread(
                target=run_producer_loop, args=(child_end, self.config, stop), daemon=True
            )
        else:
            # spawn, not fork: this process has threads (onnxruntime, the dispatcher).
            context = multiprocessing.get_context("spawn")
            stop = context.Event()
            child = context.Process(
                target=producer_process_main, args=(child_end, self.config, stop),
                name="kafka-producer",
            )  # fmt: skip
        if isinstance(child, BaseProcess):
            # Ctrl-C reaches the whole process group; until the child has set its handlers a
            # SIGINT would end it with a KeyboardInterrupt traceback.  It inherits this mask
            # and unblocks the signals once it ignores them.
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
            try:
                child.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            child_end.close()
        else:
            child.start()
        self._conn, self._child, self._child_stop = parent, child, stop
        self._stats = Stats()  # a new producer counts from zero

    def _run(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                if self._stop.is_set():
                    return
                self._read_stats(_IDLE_WAIT_S)
                continue
            batch: list[tuple[bytes, bytes]] = []
            size = 0
            while queue and len(batch) < _WRITE_BATCH and (not batch or size < _WRITE_BYTES):
                key, value = queue.popleft()
                batch.append((key, value))
                size += len(key) + len(value)
            if not self._write(frame(batch)):
                self._metrics.kafka_dropped.inc(len(batch))
            with self._lock:  # counted until handed over: the writer may block holding them
                self._queued_bytes -= size
            self._read_stats(0)

    def _write(self, blob: bytes) -> bool:
        """Hand ``blob`` to the producer; restart the producer if it died."""
        conn = self._conn
        if conn is None or not _alive(self._child):
            if self._stop.is_set():
                return False  # closing: a producer that stopped is not started again
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
