"""The scorer's side of the sidecar: scored transactions leave the process without waiting.

The request path calls :meth:`Sidecar.submit` with each scored transaction (a
:class:`service.shadow.Scored` tuple); that appends to a deque bounded in transactions
(``queue_size``) and in request bytes (``buffer_bytes`` / 2).  The request that completes a
batch (``batch_max`` transactions, or the oldest one ``batch_wait_s`` old) packs it: pickles it
into one message (about 0.7 us a transaction, once per batch).  A writer thread wakes every
``batch_wait_s`` and writes the packed batches to the sidecar process
(:mod:`service.sidecar_loop`) over a pipe; it packs a batch itself only when requests stopped
before one was complete.  Packing on the request path, not in the writer, is for the event
loop's sake: a writer that pickled took the GIL each time the loop let go of it for
onnxruntime, and the loop then waited for it, sometimes for as long as the sidecar process had
the core (the writer off the CPU, holding the GIL).  When the live shadow set changed, the
writer sends the new set at once while idle, or else before the next batch (manifests, and the
ONNX bytes of versions this sidecar has not had yet, written to the pipe as they are, never
copied into a pickle).  Both directions speak the messages of
:mod:`service.pipe`.  The sidecar runs the shadows, builds the records and produces them to
Kafka on the other core, so the scorer's event loop shares its GIL with nothing but this
thread and a reader thread that wakes twice a second.

The sidecar's counts come back on a second pipe, read by that reader thread, and are added to
this process's metrics (:func:`service.tally.apply_tally`).  Two one-way pipes, each with a
thread of its own on this side, so neither direction can stall the other.

Nothing is lost uncounted.  While the broker is down the sidecar spools the records
(:mod:`service.outbox`); when it cannot keep up, or neither Kafka nor the spool can take more,
the pipe and then the deque fill, and transactions are dropped and counted: as
``shadowline_kafka_dropped_total`` when the sidecar said Kafka holds it back (broker down or
its in-flight limit reached, and the spool full or off), else as
``shadowline_shadow_shed_total``.  When a sidecar ends (crash, kill, or stop), every
transaction handed to it and not counted by it as sent, failed or lost is counted as
``shadowline_records_failed_total{kind="sidecar_gone"}``.  A sidecar that dies is started again
(at most every ``RESPAWN_INTERVAL_S``; ``shadowline_sidecar_restarts_total``).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as ProcessEvent
from typing import NamedTuple, Protocol

from service.live import LiveModels, ShadowSlot
from service.metrics import ServiceMetrics
from service.models import ModelBytes, load_model
from service.pipe import (
    Batch,
    Frames,
    PipeError,
    Report,
    ShadowSet,
    ShadowSpec,
    Stop,
    send_frames,
)
from service.pipe import encode as encode_message
from service.pipe import receive as receive_message
from service.pipe import send as send_message
from service.producer import open_producer
from service.shadow import Scored
from service.sidecar_loop import (
    ProducerFactory,
    ShadowLoader,
    SidecarConfig,
    run_sidecar_loop,
    sidecar_process_main,
)
from service.tally import Tally, apply_tally, new_load_failures

log = logging.getLogger(__name__)
StopEvent = ProcessEvent | threading.Event
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
DEFAULT_BUFFER_BYTES = 64 << 20
RESPAWN_INTERVAL_S = 5.0
# How long the writer waits for transactions when idle: keeps an idle scorer from waking 500
# times a second (measured: 5% of a core at 2 ms).
_IDLE_WAIT_S = 0.02


class _Packed(NamedTuple):
    """A batch packed for the pipe: the encoded :class:`~service.pipe.Batch` message, how many
    transactions it holds and their request bytes."""

    frames: Frames
    transactions: int
    size: int


class RecordSink(Protocol):
    """Where scored transactions go.  ``submit`` must never block."""

    def submit(self, item: Scored) -> None: ...

    def broker_state(self) -> dict[str, object]: ...

    def shadows_loaded(self) -> tuple[str, ...]: ...

    def start(self) -> None: ...

    def close(self, timeout_s: float = 5.0) -> None: ...


class _Generation:
    """One sidecar (process or thread) and this side's ends of its two pipes."""

    def __init__(
        self,
        child: BaseProcess | threading.Thread,
        data: Connection,
        stats: Connection,
        stop: StopEvent,
    ) -> None:
        self.child = child
        self.data = data  # this side sends batches
        self.stats = stats  # this side receives Tally snapshots
        self.stop = stop
        self.tally = Tally()  # its last snapshot
        self.reported = threading.Event()  # it has sent one
        self.handed = 0  # transactions written to it
        self.artifacts: set[str] = set()  # versions it holds (their ONNX bytes were sent)
        self.shadows: tuple[tuple[str, float], ...] | None = None  # the set it has
        self.reader: threading.Thread | None = None

    def alive(self) -> bool:
        return self.child.is_alive()


class Sidecar:
    """Bounded, non-blocking hand-over of scored transactions to the sidecar process.

    ``queue_size`` and ``buffer_bytes`` bound what is held: ``queue_size`` transactions and
    half of ``buffer_bytes`` (of request bodies) here; the producer holds at most
    ``config.producer.max_in_flight_bytes`` (the other half) plus the batch it is reading; the
    pipe between them holds a few hundred KiB more, bounded by the kernel.
    ``in_process=True`` runs the sidecar loop in a thread instead of a child process (tests;
    same code, same pipes).  ``producer`` builds each sidecar's producer and ``load`` loads
    each of its shadows (in a child process: picklable module-level callables; tests inject
    them).  ``on_load_failure(version, why)`` hears, on the reader thread, of each shadow the
    sidecar could not load (:meth:`service.loader.ModelLoader.shadow_failed`).
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
        batch_wait_s: float = 0.02,
        in_process: bool = False,
        producer: ProducerFactory = open_producer,
        load: ShadowLoader = load_model,
        on_load_failure: Callable[[str, str], None] | None = None,
    ) -> None:
        self.config = config
        self._on_load_failure = on_load_failure
        self._producer = producer
        self._load = load
        self._live = live
        self._metrics = metrics
        self._max_queued = max(1, queue_size)
        self._max_queued_bytes = max(1, buffer_bytes // 2)
        self._batch_max = batch_max
        self._batch_wait_s = batch_wait_s
        self._queued_bytes = 0
        self._lock = threading.Lock()  # held to queue, pack and unpack: batches keep their order
        self._queue: collections.deque[Scored] = collections.deque()
        self._first_at = 0.0  # when the oldest transaction in _queue was queued (monotonic)
        self._packed: collections.deque[_Packed] = collections.deque()
        self._packed_count = 0  # transactions in _packed
        metrics.kafka_buffered_bytes.set_function(lambda: float(self.buffered_bytes))
        metrics.watch_queue(lambda: len(self._queue) + self._packed_count)
        self._in_process = in_process
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._gen: _Generation | None = None
        self._next_spawn = 0.0

    @property
    def running(self) -> bool:
        """The current sidecar has reported at least once."""
        gen = self._gen
        return gen is not None and gen.reported.is_set()

    @property
    def connected(self) -> bool:
        """The sidecar's last report: it has a broker connection and deliveries succeed."""
        gen = self._gen
        return gen is not None and gen.tally.connected

    def broker_state(self) -> dict[str, object]:
        """For ``/readyz``: whether the sidecar's producer reaches the broker (its last report)
        and what waits in the spool."""
        gen = self._gen
        tally = gen.tally if gen is not None else Tally()
        return {
            "reachable": tally.connected,
            "spooled_records": tally.spool_records,
            "spooled_bytes": tally.spool_bytes,
            # A configured spool that could not be created (records then fail, counted).
            "spool_error": tally.spool_error or None,
        }

    def shadows_loaded(self) -> tuple[str, ...]:
        """For ``/readyz``: the shadows the sidecar has loaded and scores with (its last
        report); a shadow in the set but not here is still loading, or failed to."""
        gen = self._gen
        return gen.tally.shadows_loaded if gen is not None else ()

    @property
    def queued_bytes(self) -> int:
        """Request bytes of the transactions held in this process."""
        return self._queued_bytes

    @property
    def buffered_bytes(self) -> int:
        """Bytes held here plus the producer's last reported in-flight bytes."""
        gen = self._gen
        return self._queued_bytes + (gen.tally.in_flight_bytes if gen is not None else 0)

    def submit(self, item: Scored) -> None:
        """Queue one scored transaction, or drop and count it when the queue (transactions or
        bytes) is full; pack the batch it completes.  Never blocks (beyond a lock held for a
        few operations, or for packing a batch: ~0.1 ms once per ``batch_max``)."""
        with self._lock:
            queue = self._queue
            if (
                len(queue) + self._packed_count >= self._max_queued
                or self._queued_bytes + item.size > self._max_queued_bytes
            ):
                self._count_dropped(1)
                return
            if not queue:
                self._first_at = time.monotonic()
            queue.append(item)
            self._queued_bytes += item.size
            if len(queue) >= self._batch_max or self._due():
                self._pack()

    def _due(self) -> bool:
        """The oldest queued transaction has waited ``batch_wait_s``."""
        return time.monotonic() - self._first_at >= self._batch_wait_s

    def _pack(self) -> None:
        """Encode the oldest queued transactions (up to ``batch_max``) into one message; with
        the lock held.  A batch that cannot be encoded (a bug) is dropped and counted."""
        queue = self._queue
        batch = [queue.popleft() for _ in range(min(len(queue), self._batch_max))]
        size = sum(item.size for item in batch)
        if queue:
            self._first_at = time.monotonic()
        try:
            frames = encode_message(Batch(batch))
        except Exception:  # never the request's failure
            log.exception("sidecar: packing a batch of %d failed", len(batch))
            self._count_dropped(len(batch))
            self._queued_bytes -= size
            return
        self._packed.append(_Packed(frames, len(batch), size))
        self._packed_count += len(batch)

    def _unpack(self) -> _Packed | None:
        """The oldest packed batch, taken off; with nothing packed, the transactions queued
        for ``batch_wait_s`` (or any, when stopping) packed now; else None."""
        with self._lock:
            if not self._packed and self._queue and (self._stop.is_set() or self._due()):
                self._pack()
            if not self._packed:
                return None
            packed = self._packed.popleft()
            self._packed_count -= packed.transactions
            return packed

    def drain(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything submitted so far has been handed to the sidecar (tests).
        Returns False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._queue and not self._packed and self._queued_bytes == 0:
                return True
            time.sleep(0.005)
        return False

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the sidecar and the writer; wait (up to ``timeout_s``) until the sidecar runs,
        so that the first requests' shadows are not shed for its start-up time (a process
        imports onnxruntime and kafka-python: about 1.5 s)."""
        if self._writer is not None:
            return
        gen = self._spawn()
        if not gen.reported.wait(timeout_s):
            log.warning("sidecar: not running after %gs; serving anyway", timeout_s)
        self._writer = threading.Thread(target=self._run, name="sidecar-writer", daemon=True)
        self._writer.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Hand over what is queued and stop the sidecar: it finishes what it has and flushes
        the producer (``config.flush_timeout_s``).  Each wait is bounded by ``timeout_s``: a
        writer still blocked then (the sidecar held back by Kafka) or a sidecar process still
        running is stopped by killing the sidecar, and what it held is counted
        (``sidecar_gone``).  A sidecar without a broker connection writes off what it gets as
        failed and stops at once.
        """
        self._stop.set()
        gen = self._gen
        if gen is not None:
            gen.stop.set()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.join(timeout_s)
            if writer.is_alive() and gen is not None:
                self._kill(gen, timeout_s)  # the writer's blocked send fails; it then ends
                writer.join(timeout_s)
        if gen is None:
            return
        if not (writer is not None and writer.is_alive()):
            with contextlib.suppress(OSError, ValueError):
                send_message(gen.data, Stop())
        gen.child.join(timeout_s)
        if gen.alive():
            self._kill(gen, timeout_s)
        self._retire(gen)
        self._gen = None

    def _count_dropped(self, n: int) -> None:
        gen = self._gen
        tally = gen.tally if gen is not None and gen.reported.is_set() else None
        if tally is not None and (not tally.connected or tally.kafka_full):
            self._metrics.kafka_dropped.inc(n)  # Kafka holds the sidecar back
        else:
            self._metrics.shadow_shed.inc(n)  # the sidecar cannot keep up (or is restarting)

    # -- sidecar generations ----------------------------------------------------------------
    def _spawn(self) -> _Generation:
        data_recv, data_send = multiprocessing.Pipe(duplex=False)
        stats_recv, stats_send = multiprocessing.Pipe(duplex=False)
        child: BaseProcess | threading.Thread
        stop: StopEvent
        args = (data_recv, stats_send, self.config)
        if self._in_process:
            stop = threading.Event()
            child = threading.Thread(
                target=run_sidecar_loop,
                args=(*args, stop, self._producer, self._load),
                daemon=True,
            )
            child.start()
        else:
            # spawn, not fork: this process has threads (onnxruntime, the writer).
            context = multiprocessing.get_context("spawn")
            stop = context.Event()
            child = context.Process(
                target=sidecar_process_main,
                args=(*args, stop, self._producer, self._load),
                name="shadowline-sidecar",
            )
            # Ctrl-C reaches the whole process group; until the child has set its handlers a
            # SIGINT would end it with a KeyboardInterrupt traceback.  It inherits this mask
            # and unblocks the signals once it ignores them.
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
            try:
                child.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            data_recv.close()  # the child's ends: closed here, so either side sees the other go
            stats_send.close()
        gen = _Generation(child, data_send, stats_recv, stop)
        gen.reader = threading.Thread(
            target=self._read, args=(gen,), name="sidecar-reader", daemon=True
        )
        gen.reader.start()
        self._gen = gen
        return gen

    def _read(self, gen: _Generation) -> None:
        """The reader thread: apply each snapshot until the sidecar closes its end."""
        while True:
            try:
                message = receive_message(gen.stats)
            except (EOFError, OSError):
                return
            except PipeError as exc:
                log.error("%s; ignored", exc)
                continue
            if not isinstance(message, Report):
                log.error("sidecar: a %s from the sidecar; ignored", type(message).__name__)
                continue
            snapshot = message.tally
            old, gen.tally = gen.tally, snapshot
            gen.reported.set()
            apply_tally(self._metrics, old, snapshot)
            if self._on_load_failure is not None:
                for version, why in new_load_failures(old, snapshot):
                    self._on_load_failure(version, why)

    def _kill(self, gen: _Generation, timeout_s: float) -> None:
        child = gen.child
        if isinstance(child, BaseProcess) and child.is_alive():
            # It ignores SIGTERM (the whole process group gets Ctrl-C and SIGTERM): kill.
            log.warning("sidecar: still running after %gs; killing it", timeout_s)
            child.kill()
            child.join(5.0)

    def _retire(self, gen: _Generation) -> None:
        """After a sidecar ended: take its last counts, count what it never accounted for,
        close this side's pipe ends."""
        if gen.reader is not None:
            gen.reader.join(5.0)  # its stats pipe is at end of stream: this is quick
        tally = gen.tally
        fates = tally.sent + tally.spooled + tally.failed + tally.records_failed.get("lost", 0)
        unaccounted = gen.handed - fates
        if unaccounted > 0:
            log.error("sidecar: ended holding %d transactions; counted as lost", unaccounted)
            self._metrics.records_failed.labels("sidecar_gone").inc(unaccounted)
        for conn in (gen.data, gen.stats):
            conn.close()
        if isinstance(gen.child, BaseProcess):
            with contextlib.suppress(ValueError):  # one that survived kill(): let it be
                gen.child.close()

    # -- the writer thread ------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            gen = self._live_generation()
            packed = self._unpack()
            if packed is None:
                if not self._queue:
                    if self._stop.is_set():
                        return
                    if gen is not None:
                        self._hand_shadows(gen)
                    self._stop.wait(_IDLE_WAIT_S)
                elif not self._stop.is_set():
                    self._stop.wait(self._batch_wait_s)  # let a batch gather
                continue
            try:
                handed = gen is not None and self._hand(gen, packed)
            except Exception:  # keep the writer alive whatever a batch does
                log.exception("sidecar: handing over a batch of %d failed", packed.transactions)
                handed = False
            if not handed:
                self._count_dropped(packed.transactions)
            with self._lock:  # counted until handed over: the writer may block holding them
                self._queued_bytes -= packed.size

    def _live_generation(self) -> _Generation | None:
        """The running sidecar; a dead one is retired and (at most every
        ``RESPAWN_INTERVAL_S``, not while closing) replaced."""
        gen = self._gen
        if gen is not None and gen.alive():
            return gen
        if self._stop.is_set() or time.monotonic() < self._next_spawn:
            return None
        self._next_spawn = time.monotonic() + RESPAWN_INTERVAL_S
        if gen is None:
            return self._spawn()
        log.error("sidecar: it is gone; starting a new one")
        self._retire(gen)
        new = self._spawn()
        self._metrics.sidecar_restarts.inc()
        return new

    def _hand(self, gen: _Generation, packed: _Packed) -> bool:
        """Send the shadow set if this sidecar does not have it, then the batch."""
        if not self._sync_shadows(gen):
            return False
        if not _send(gen, packed.frames):
            return False
        gen.handed += packed.transactions
        return True

    def _hand_shadows(self, gen: _Generation) -> None:
        """While idle: send a changed shadow set at once, so the sidecar loads the new shadows
        before their first batch instead of holding that batch while it loads them."""
        try:
            self._sync_shadows(gen)
        except Exception:  # keep the writer alive; the next batch sends the set again
            log.exception("sidecar: handing over the shadow set failed")

    def _sync_shadows(self, gen: _Generation) -> bool:
        """Send the live shadow set unless this sidecar has it; False when sending failed."""
        slots = self._live.current.shadows
        key = tuple((slot.model.version, slot.rate) for slot in slots)
        if key == gen.shadows:
            return True
        specs = _specs(slots, gen.artifacts)
        if not _send(gen, encode_message(ShadowSet(specs))):
            return False
        gen.shadows = key
        gen.artifacts = {spec.version for spec in specs}  # it drops the others
        return True


def _send(gen: _Generation, frames: Frames) -> bool:
    """Write an encoded message to the sidecar; False when its pipe is closed."""
    try:
        send_frames(gen.data, frames)  # blocks while the sidecar holds back (broker down)
    except (OSError, ValueError):
        return False
    return True


def _specs(slots: tuple[ShadowSlot[ModelBytes], ...], sent: set[str]) -> tuple[ShadowSpec, ...]:
    """The shadow set; ONNX bytes only for versions the sidecar has not been sent."""
    return tuple(
        ShadowSpec(
            slot.model.manifest,
            b"" if slot.model.version in sent else slot.model.artifact,
            slot.rate,
        )
        for slot in slots
    )
