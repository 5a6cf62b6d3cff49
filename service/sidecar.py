"""The scorer's side of the sidecar: scored transactions leave the process without waiting.

The request path calls :meth:`Sidecar.submit` with each scored transaction (a
:class:`service.shadow.Scored` tuple); that appends to a deque bounded in transactions
(``queue_size``) and in request bytes (``buffer_bytes`` / 2).  A writer thread wakes every
``batch_wait_s``, pickles what has accumulated (up to ``batch_max`` per message, about 4 us a
transaction) and writes it to the sidecar process (:mod:`service.sidecar_loop`) over a pipe;
before the first batch after the live shadow set changed, it sends the new set (manifests and
ONNX bytes).  The sidecar runs the shadows, builds the records and produces them to Kafka on
the other core, so the scorer's event loop shares its GIL with nothing but this thread.

When the sidecar cannot keep up, the pipe and then the deque fill, and transactions are
dropped and counted, never queued without bound: as ``shadowline_kafka_dropped_total`` when
the sidecar is held back by Kafka (broker down or its in-flight limit reached), else as
``shadowline_shadow_shed_total``.  The sidecar's counts come back over the pipe and are added
to this process's metrics (:func:`service.tally.apply_tally`).  A sidecar that dies is started
again.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing
import pickle
import signal
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as ProcessEvent
from typing import Protocol

from service.live import LiveModels, ShadowSlot
from service.metrics import ServiceMetrics
from service.shadow import Scored
from service.sidecar_loop import (
    ShadowSpec,
    SidecarConfig,
    run_sidecar_loop,
    sidecar_process_main,
)
from service.tally import Tally, apply_tally

log = logging.getLogger(__name__)
StopEvent = ProcessEvent | threading.Event
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
DEFAULT_BUFFER_BYTES = 64 << 20
RESPAWN_INTERVAL_S = 5.0
# How long the writer waits for transactions when idle: keeps an idle scorer from waking 500
# times a second (measured: 5% of a core at 2 ms).
_IDLE_WAIT_S = 0.02


class RecordSink(Protocol):
    """Where scored transactions go.  ``submit`` must never block."""

    def submit(self, item: Scored) -> None: ...

    def start(self) -> None: ...

    def close(self, timeout_s: float = 5.0) -> None: ...


class Sidecar:
    """Bounded, non-blocking hand-over of scored transactions to the sidecar process.

    ``queue_size`` and ``buffer_bytes`` bound what is held: ``queue_size`` transactions and
    half of ``buffer_bytes`` (of request bodies) here, the other half of the bytes in flight
    in the producer; the pipe between them holds a few hundred KiB more, bounded by the kernel.
    ``in_process=True`` runs the sidecar loop in a thread instead of a child process (tests;
    same code, same pipe).
    """

    def __init__(
        self,
        config: SidecarConfig,
        live: LiveModels,
        metrics: ServiceMetrics,
        *,
        queue_size: int,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        batch_max: int = 128,
        batch_wait_s: float = 0.005,
        in_process: bool = False,
    ) -> None:
        self.config = config
        self._live = live
        self._metrics = metrics
        self._max_queued = max(1, queue_size)
        self._max_queued_bytes = max(1, buffer_bytes // 2)
        self._batch_max = batch_max
        self._batch_wait_s = batch_wait_s
        self._queued_bytes = 0
        self._lock = threading.Lock()  # the request path adds bytes, the writer takes them off
        self._queue: collections.deque[Scored] = collections.deque()
        metrics.kafka_buffered_bytes.set_function(lambda: float(self.buffered_bytes))
        metrics.watch_queue(lambda: len(self._queue))
        self._in_process = in_process
        self._tally = Tally()
        self._reported = False  # the current sidecar has sent a snapshot
        self._shadows_sent: tuple[tuple[str, float], ...] | None = None
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._conn: Connection | None = None
        self._child: BaseProcess | threading.Thread | None = None
        self._child_stop: StopEvent | None = None
        self._next_spawn = 0.0

    @property
    def connected(self) -> bool:
        """The sidecar's last report: it has a broker connection and deliveries succeed."""
        return self._tally.connected

    @property
    def queued_bytes(self) -> int:
        """Request bytes of the transactions held in this process."""
        return self._queued_bytes

    @property
    def buffered_bytes(self) -> int:
        """Bytes held here plus the producer's last reported in-flight bytes."""
        return self._queued_bytes + self._tally.in_flight_bytes

    def submit(self, item: Scored) -> None:
        """Queue one scored transaction, or drop and count it when the queue (transactions or
        bytes) is full.  Never blocks (beyond a lock held for a few operations)."""
        with self._lock:
            if (
                len(self._queue) >= self._max_queued
                or self._queued_bytes + item.size > self._max_queued_bytes
            ):
                self._count_dropped(1)
                return
            self._queue.append(item)
            self._queued_bytes += item.size

    def drain(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything submitted so far has been handed to the sidecar (tests and
        shutdown).  Returns False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._queue and self._queued_bytes == 0:
                return True
            time.sleep(0.005)
        return False

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the sidecar and the writer; wait (up to ``timeout_s``) until the sidecar runs,
        so that the first requests' shadows are not shed for its start-up time (a process
        imports onnxruntime and kafka-python: about 1.5 s)."""
        if self._writer is not None:
            return
        self._spawn()
        self._read_stats(timeout_s)
        if not self._reported:
            log.warning("sidecar: not running after %gs; serving anyway", timeout_s)
        self._writer = threading.Thread(target=self._run, name="sidecar-writer", daemon=True)
        self._writer.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Hand over what is queued, let the sidecar finish and flush (up to ``timeout_s``),
        stop it.

        A sidecar without a broker connection stops at once (what it holds is counted as
        failed); a sidecar process still running after ``timeout_s`` is killed, so closing
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
            # (A writer still blocked on a full pipe owns the connection: no stop message then;
            # a sidecar process that has not stopped on the stop event is killed below.)
            with contextlib.suppress(OSError, ValueError):
                conn.send_bytes(b"")  # the stop message
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and _alive(child):
                self._read_stats(0.05)
            self._read_stats(0)
        if conn is not None:
            conn.close()
        if isinstance(child, BaseProcess):
            if child.is_alive():
                # It ignores SIGTERM (the whole process group gets Ctrl-C and SIGTERM): kill.
                log.warning("sidecar: it did not stop within %gs; killing it", timeout_s)
                child.kill()
            child.join(5.0)
        self._conn = self._child = None
        self._child_stop = None

    def _count_dropped(self, n: int) -> None:
        tally = self._tally
        if tally.connected and not tally.kafka_full:
            self._metrics.shadow_shed.inc(n)  # the shadows (or records) cannot keep up
        else:
            self._metrics.kafka_dropped.inc(n)  # Kafka holds the sidecar back

    # -- the writer thread ----------------------------------------------------------------
    def _spawn(self) -> None:
        if self._conn is not None:  # a dead sidecar's pipe
            self._conn.close()
        if isinstance(self._child, BaseProcess):
            self._child.join(0.1)
        parent, child_end = multiprocessing.Pipe(duplex=True)
        child: BaseProcess | threading.Thread
        stop: StopEvent
        if self._in_process:
            stop = threading.Event()
            child = threading.Thread(
                target=run_sidecar_loop, args=(child_end, self.config, stop), daemon=True
            )
        else:
            # spawn, not fork: this process has threads (onnxruntime, the writer).
            context = multiprocessing.get_context("spawn")
            stop = context.Event()
            child = context.Process(
                target=sidecar_process_main, args=(child_end, self.config, stop),
                name="shadowline-sidecar",
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
        self._tally = Tally()  # a new sidecar counts from zero
        self._reported = False
        self._shadows_sent = None  # and has no shadows yet

    def _run(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                if self._stop.is_set():
                    return
                self._read_stats(_IDLE_WAIT_S)
                continue
            if len(queue) < self._batch_max and not self._stop.is_set():
                self._read_stats(self._batch_wait_s)  # let a batch gather
            batch: list[Scored] = []
            size = 0
            while queue and len(batch) < self._batch_max:
                item = queue.popleft()
                batch.append(item)
                size += item.size
            if not (self._send_shadows() and self._write(pickle.dumps(("batch", batch), 5))):
                self._count_dropped(len(batch))
            with self._lock:  # counted until handed over: the writer may block holding them
                self._queued_bytes -= size

    def _send_shadows(self) -> bool:
        """Send the live shadow set if the sidecar does not have it yet."""
        slots = self._live.current.shadows
        key = tuple((slot.model.version, slot.rate) for slot in slots)
        if key == self._shadows_sent:
            return True
        if not self._write(pickle.dumps(("shadows", _specs(slots)), 5)):
            return False
        self._shadows_sent = key
        return True

    def _write(self, blob: bytes) -> bool:
        """Hand ``blob`` to the sidecar; restart the sidecar if it died."""
        conn = self._conn
        if conn is None or not _alive(self._child):
            if self._stop.is_set():
                return False  # closing: a sidecar that stopped is not started again
            if time.monotonic() >= self._next_spawn:
                log.error("sidecar: the process is gone; starting a new one")
                self._next_spawn = time.monotonic() + RESPAWN_INTERVAL_S
                self._spawn()
            return False
        try:
            conn.send_bytes(blob)  # blocks while the sidecar holds back (broker down)
        except (OSError, ValueError):
            return False
        return True

    def _read_stats(self, timeout_s: float) -> None:
        conn = self._conn
        try:
            while conn is not None and conn.poll(timeout_s):
                snapshot = pickle.loads(conn.recv_bytes())  # noqa: S301 - our own child's bytes
                old, self._tally = self._tally, snapshot
                self._reported = True
                apply_tally(self._metrics, old, snapshot)
                timeout_s = 0
        except (EOFError, OSError, ValueError):
            return


def _specs(slots: tuple[ShadowSlot, ...]) -> tuple[ShadowSpec, ...]:
    return tuple(ShadowSpec(slot.model.manifest, slot.model.artifact, slot.rate) for slot in slots)


def _alive(child: BaseProcess | threading.Thread | None) -> bool:
    return child is not None and child.is_alive()
