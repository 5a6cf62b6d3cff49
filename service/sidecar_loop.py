"""The sidecar process: shadows, score records and the Kafka producer, off the scorer's core.

The scorer's process answers requests and does nothing else per request but hand the scored
transaction (a :class:`service.shadow.Scored` tuple) to :class:`service.sidecar.Sidecar`,
which pickles batches of them to this loop over a pipe.  Here, in a process of its own (a
thread in tests), each batch is scored by the shadows (:class:`service.shadow.ShadowRunner`,
each on its own executor within a time budget), turned into one record per transaction and
produced to the scores topic (:func:`service.producer.open_producer`: confluent-kafka or
kafka-python).

Why a process: in the scorer's process this work held the GIL the event loop needed, and
production's p99 at half the maximum rate grew 3.6x with 3 shadows (docs/benchmarks.md, before
this design); here it runs on the other core.  The price is a pickle of about 1 us per
transaction in the scorer.  Only this process builds the shadows' sessions: the scorer holds
their verified bytes (:class:`service.models.ModelBytes`), so a shadow-set change costs its
event loop nothing but the hand-over.

Two one-way pipes, carrying the messages of :mod:`service.pipe`: from the scorer, batches of
scored transactions, the shadow set whenever it changes (a version's ONNX bytes only the first
time; a new version is loaded on the shadows' loader thread while this loop goes on with the
batches, so production's records never wait for a shadow's session: a shadow scores from the
first batch after its load completes, and the records before carry no entry for it; a version
that fails to load here, its session or its golden examples, is an error entry,
``load``, on the records it should have scored, and goes back to the scorer in the tally's
``load_failures``: the scorer reports it and leaves it out) and stop; from here, a
:class:`service.tally.Tally` snapshot every ``stats_interval_s`` and once more at exit, read by
a thread of the scorer's that does nothing else. Records go out through
:class:`service.outbox.Outbox`: to the producer (any :class:`RecordProducer`;
:func:`service.producer.open_producer` unless the caller passes another factory), or, while it
has no broker, no room, or records wait before them, to the local spool. When neither can take
more (the spool full or off), the loop stops reading batches: that pipe fills, and the scorer
drops (and counts) what it cannot hand over.

Shedding.  The shadows get what CPU is left (their threads run at a lower priority still,
``shadow_niceness``); when that is not enough, batches arrive here later and later.  The loop
decides before running anything: a batch older than three quarters of ``max_lag_s`` has a
share of its sampled shadow rows shed, growing with its age to all of them at ``max_lag_s``.
A shed row's record goes out with production's score and a ``shed`` entry per sampled
shadow, counted (``shadowline_shadow_errors_total{kind="shed"}``), so above the sidecar's
capacity the excess is shed and counted while the rest is still scored.

Stopping also sets a flag shared with the parent (an event): a loop held back (broker
unreachable, spool full) does not read the pipe, so it would never see the empty message; on
the flag, unless a broker accepts a connection now, it spools every batch the scorer still
sends (shadows shed), or counts it as failed without a spool, until the stop message, and
exits.  The loop reports once as soon as it runs: the
scorer waits for that before it serves, so the first requests do not wait for the sidecar to
start.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import random
import signal
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Protocol

import orjson

from registry.manifest import Manifest
from service.errors import ModelLoadError
from service.live import ShadowSlot
from service.models import LoadedModel, load_model
from service.outbox import Outbox, SpoolConfig
from service.pipe import Batch, PipeError, Report, ShadowSet, ShadowSpec, Stop, receive, send
from service.priority import low_priority_executor
from service.producer import DeliveryListener, ProducerConfig, open_producer
from service.shadow import Scored, ShadowEntry, ShadowRunner, build_record, error_entry
from service.tally import Tally

log = logging.getLogger(__name__)


class RecordProducer(Protocol):
    """What the outbox needs of a Kafka producer (:class:`service.producer.KafkaOut` and
    :class:`service.producer_rdkafka.RdKafkaOut` are).

        ``send`` hands over one record; the producer's :class:`DeliveryListener` hears of its
        ``tag`` exactly once, acknowledged or failed (from any thread).  ``send_records`` hands
        over a batch of untagged records: each acknowledged one adds one to ``acked``, each
        failed one is given back to the listener as a :class:`service.producer.FailedRecord`
        (why two ways: :mod:`service.producer`).  ``ensure`` creates the
        client when a broker accepts (True when one exists), ``check`` drops one that stopped
        answering, ``close`` flushes (up to ``timeout_s``) and fails what is left.  ``ready``: a
        client exists; ``full()``: it holds its limit of unacknowledged records or bytes;
        ``failing``: the last record that came back failed; ``broken``: a record of the current
        client failed (the outbox then closes it, so what it holds fails in order).

        It keeps the tally's producer gauges, which the scorer reads: ``connected``,
        ``kafka_full`` (the answer of the last ``full()``), ``in_flight_bytes`` and
        ``restarts`` (clients created).
    """

    @property
    def ready(self) -> bool: ...

    @property
    def failing(self) -> bool: ...

    @property
    def broken(self) -> bool: ...

    def full(self) -> bool: ...

    @property
    def acked(self) -> int: ...

    def send(self, key: bytes, value: bytes, tag: Hashable) -> None: ...

    def send_records(self, records: list[tuple[bytes, bytes]]) -> None: ...

    def ensure(self) -> bool: ...

    def check(self) -> None: ...

    def close(self, timeout_s: float) -> None: ...


# Builds the producer of one sidecar: its configuration, the tally it keeps its gauges in
# (connected, in-flight bytes, restarts) and who hears of each record's fate.
ProducerFactory = Callable[[ProducerConfig, Tally, DeliveryListener], RecordProducer]
# Loads one shadow from its manifest and ONNX bytes (the session and its golden replay).
ShadowLoader = Callable[[Manifest, bytes], LoadedModel]


@dataclass(frozen=True)
class SidecarConfig:
    """Everything the loop needs; picklable, so it can be handed to a spawned process."""

    producer: ProducerConfig
    budget_s: float = 0.05
    max_lag_s: float = 1.0
    stats_interval_s: float = 0.5
    # How long stopping waits for the broker to acknowledge what the producer holds (less
    # than the scorer's close timeout, so the last counts reach it).
    flush_timeout_s: float = 3.0
    seed: int | None = None
    # Added to the sidecar process's nice value (SHADOWLINE_SIDECAR_NICENESS).
    niceness: int = 0
    # Added again for the threads that run the shadow models (SHADOWLINE_SHADOW_NICENESS):
    # when the cores are contended, the scorer's event loop and the records (production's
    # answers) go first, and the shadows fall behind (and are shed), not production.
    shadow_niceness: int = 10
    # Where records wait while the broker cannot take them (None: nowhere, they fail).
    spool: SpoolConfig | None = None


class StopFlag(Protocol):
    """Set by the parent when it stops the sidecar (a ``multiprocessing`` or ``threading``
    event)."""

    def is_set(self) -> bool: ...


class SidecarLoop:
    """Reads the scorer's messages, runs the shadows, produces the records (module docstring)."""

    def __init__(
        self,
        data: Connection,
        stats: Connection,
        config: SidecarConfig,
        stop: StopFlag,
        *,
        load: ShadowLoader = load_model,
        producer: ProducerFactory = open_producer,
    ) -> None:
        self._data = data  # batches and shadow sets from the scorer
        self._stats = stats  # tally snapshots to the scorer
        self._config = config
        self._stop = stop
        self._load = load
        self.tally = Tally()
        self._out = Outbox(config.producer, config.spool, self.tally, factory=producer)
        # A shadow that hangs holds the loop at most max_lag_s: by then the batches behind it
        # are shed anyway.
        self._runner = ShadowRunner(
            self.tally, config.budget_s, wait_s=config.max_lag_s, niceness=config.shadow_niceness
        )
        # New shadows are loaded (session built, golden examples replayed) at the shadows'
        # priority too: on a busy machine a shadow-set change must not take CPU from the
        # scorer or from this loop's records for long.
        self._loader = low_priority_executor(config.shadow_niceness, "shadow-loader")
        self._rng = random.Random(config.seed)  # noqa: S311 - sampling, not security
        self._loaded: dict[str, LoadedModel] = {}
        self._loading: dict[str, Future[LoadedModel]] = {}  # on the loader thread
        self._load_errors: dict[str, str] = {}
        self._specs: tuple[ShadowSpec, ...] = ()
        self._last_stats = 0.0
        self._parent_pid = os.getppid()

    def run(self) -> None:
        """Until the parent sends an empty message or goes away; then flush and report.

        It reports once before it opens the spool: adopting a large one takes a while, and
        the scorer waits for the first report before it serves."""
        try:
            self._report(force=True)
            self._out.open()
            while self._step():
                pass
        finally:
            self._runner.close()
            self._loader.shutdown(wait=False)
            self._out.close(flush_timeout_s=self._config.flush_timeout_s)
            self._report(force=True)
            self._data.close()
            self._stats.close()  # the scorer's reader sees the end

    def _step(self) -> bool:
        if os.getppid() != self._parent_pid:
            return False  # the scorer died without saying goodbye (SIGKILL): stop too
        self._report()
        self._out.tick()
        self._take_loaded()
        if self._stop.is_set() and not self._out.deliverable():
            self._drain()  # nothing can be delivered: do not wait for the broker
            return False
        if not self._out.accepting():
            time.sleep(0.05)  # hold further batches in the pipe: the parent drops, counted
            return True
        try:
            if not self._data.poll(0.1):
                return True
            message = receive(self._data)
        except (EOFError, OSError):
            return False  # the parent is gone
        except PipeError as exc:  # a bug on the scorer's side: say so, keep going
            log.error("%s; ignored", exc)
            return True
        if isinstance(message, Batch):
            self.process(message.items)
        elif isinstance(message, ShadowSet):
            self.set_shadows(message.specs)
        elif isinstance(message, Stop):
            return False
        else:
            log.error("sidecar: a %s from the scorer; ignored", type(message).__name__)
        return True

    def set_shadows(self, specs: tuple[ShadowSpec, ...]) -> None:
        """Start loading the versions not held yet (without waiting: :meth:`_take_loaded`
        picks them up); release those no longer wanted."""
        wanted = {spec.version for spec in specs}
        for spec in specs:
            version = spec.version
            if version in self._loaded or version in self._loading or version in self._load_errors:
                continue
            if not spec.artifact:  # the scorer sends the bytes with a version's first set
                self._load_failed(
                    version, ModelLoadError(spec.manifest.ref, "no ONNX bytes were sent")
                )
                continue
            self._loading[version] = self._loader.submit(self._load_one, spec)
        self._loaded = {v: m for v, m in self._loaded.items() if v in wanted}
        # A load no longer wanted runs to its end on the loader thread and is dropped.
        self._loading = {v: f for v, f in self._loading.items() if v in wanted}
        self._load_errors = {v: e for v, e in self._load_errors.items() if v in wanted}
        self._runner.retain(set(self._loaded))
        self._specs = specs
        self._take_loaded(changed=True)

    def _take_loaded(self, *, changed: bool = False) -> None:
        """Move finished loads into the shadows that score (or the failed ones); report at
        once when that changed which shadows score, so the scorer's /readyz shows it."""
        for version in [v for v, future in self._loading.items() if future.done()]:
            try:
                self._loaded[version] = self._loading.pop(version).result()
            except ModelLoadError as exc:
                self._load_failed(version, exc)
            changed = True
        if changed:
            loaded = tuple(s.version for s in self._specs if s.version in self._loaded)
            self.tally.shadows_loaded = loaded
            self._report(force=True)

    def _load_one(self, spec: ShadowSpec) -> LoadedModel:
        """On the loader thread: the shadow's session, checked and warmed; any failure is a
        :class:`ModelLoadError` (a bug in loading must not end the sidecar)."""
        try:
            return self._load(spec.manifest, spec.artifact)
        except ModelLoadError:
            raise
        except Exception as exc:
            log.exception("sidecar: loading shadow %s failed", spec.version)
            raise ModelLoadError(spec.manifest.ref, f"{type(exc).__name__}: {exc}") from exc

    def _load_failed(self, version: str, exc: ModelLoadError) -> None:
        log.error("sidecar: cannot load shadow %s: %s", version, exc)
        self._load_errors[version] = f"error: the sidecar cannot load it ({exc})"
        self.tally.load_failed(version, exc.reason)  # the scorer leaves it out

    def process(self, batch: list[Scored], *, shed: str | None = None) -> None:
        """Shadow ``batch`` (unless ``shed``: the reason) and hand one record per transaction
        to the outbox (producer or spool).

        Failures are handled per item, never per batch: a record whose ``inputs`` cannot be
        encoded is produced with ``inputs = {"_unencodable": reason}``, and a record that
        cannot be built at all is counted (``shadowline_records_failed_total``) and logged;
        the batch's other records go on.
        """
        per_item = self._shadow(batch, shed)
        dumps = orjson.dumps
        records: list[tuple[bytes, bytes]] = []
        for item, shadows in zip(batch, per_item, strict=True):
            value: bytes | None
            try:
                value = dumps(build_record(item, shadows))
            except Exception as exc:  # orjson: nesting too deep, non-str keys, int range
                value = self._unencodable(item, shadows, exc)
            if value is not None:
                records.append((item.transaction_id.encode(), value))
        try:
            self._out.put(records)
        except Exception:  # a bug must not end the sidecar; its records are counted
            log.exception("sidecar: producing a batch of %d failed", len(records))
            for _ in records:
                self.tally.record_failed("lost")
            return
        self.tally.records += len(records)

    def _shadow(self, batch: list[Scored], shed: str | None) -> list[list[ShadowEntry]]:
        """The shadow entries of each item (in the order of the shadow set)."""
        if not self._specs:
            return [[] for _ in batch]
        slots = tuple(
            ShadowSlot(self._loaded[spec.version], spec.rate)
            for spec in self._specs
            if spec.version in self._loaded
        )
        share = 1.0
        if shed is None:
            lag = time.time() - batch[0].scored_at
            share = shed_share(lag, self._config.max_lag_s)
            if share > 0.0:
                shed = f"the shadows were {lag * 1000:.0f} ms behind"
        try:
            per_item = self._runner.run(slots, batch, self._rng, shed=shed, shed_share=share)
        except Exception as exc:  # the shadows' failure must not cost production's records
            log.exception("sidecar: shadows failed on a batch of %d", len(batch))
            message = f"error: sidecar: {type(exc).__name__}: {exc}"
            per_item = [[error_entry(slot.model.version, message) for slot in slots] for _ in batch]
        for version, message in self._load_errors.items():
            for entries in per_item:
                entries.append(error_entry(version, message))
            self.tally.shadow_error(version, "load", len(batch))
        return per_item

    def _unencodable(
        self, item: Scored, shadows: list[ShadowEntry], exc: Exception
    ) -> bytes | None:
        """The record with its inputs replaced by the reason they could not be encoded, or
        None (counted as lost) when even that fails."""
        reason = f"{type(exc).__name__}: {exc}"
        log.warning("sidecar: record of %r: inputs not encodable (%s)", item.transaction_id, reason)
        try:
            record = build_record(item, shadows)
            record["inputs"] = {"_unencodable": reason}
            value = orjson.dumps(record)
        except Exception:
            log.exception("sidecar: the record of %r cannot be built", item.transaction_id)
            self.tally.record_failed("lost")
            return None
        self.tally.record_failed("unencodable_inputs")
        return value

    def _drain(self) -> None:
        """Stopping without a producer: spool every transaction the scorer still sends (its
        shadows shed), or without a spool count it as failed, until its stop message (or its
        end of the pipe, or it is gone)."""
        deadline = time.monotonic() + 60.0  # the scorer kills us long before this
        try:
            while time.monotonic() < deadline and os.getppid() == self._parent_pid:
                if not self._data.poll(0.1):
                    continue
                try:
                    message = receive(self._data)
                except PipeError as exc:
                    log.error("%s; ignored", exc)
                    continue
                if isinstance(message, Stop):
                    return
                if isinstance(message, Batch) and self._out.spooling:
                    self.process(message.items, shed="the sidecar is stopping without a broker")
                elif isinstance(message, Batch):
                    self._out.write_off(len(message.items))
                self._report()
        except (EOFError, OSError):
            return

    def _report(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_stats < self._config.stats_interval_s:
            return
        self._last_stats = now
        try:  # parent gone: nobody to report to
            send(self._stats, Report(self.tally.snapshot()))
        except (OSError, ValueError):
            return


def shed_share(lag_s: float, max_lag_s: float) -> float:
    """The share of a batch's sampled shadow rows to shed when the batch is ``lag_s`` old: none
    up to three quarters of ``max_lag_s``, then growing linearly to all of them at
    ``max_lag_s`` (a shorter stall of the sidecar is caught up, not shed)."""
    start = max_lag_s * 0.75
    if lag_s <= start:
        return 0.0
    return min(1.0, (lag_s - start) / (max_lag_s - start))


def run_sidecar_loop(
    data: Connection,
    stats: Connection,
    config: SidecarConfig,
    stop: StopFlag,
    producer: ProducerFactory = open_producer,
    load: ShadowLoader = load_model,
) -> None:
    """Run :class:`SidecarLoop` until told to stop (a thread's target, in tests)."""
    SidecarLoop(data, stats, config, stop, load=load, producer=producer).run()


def sidecar_process_main(
    data: Connection,
    stats: Connection,
    config: SidecarConfig,
    stop: StopFlag,
    producer: ProducerFactory = open_producer,
    load: ShadowLoader = load_model,
) -> None:
    """Entry point of the sidecar process.

    Ctrl-C and SIGTERM reach the whole process group; the sidecar ignores them and stops when
    the scorer says so (after its own graceful shutdown) or when the scorer is gone.  The
    scorer kills it if it has not stopped within the scorer's close timeout.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The parent blocked them around the start (see Sidecar._spawn): ignored now, so unblock.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    if config.niceness:
        os.nice(config.niceness)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # its INFO lines are per connection
    freeze_startup_heap(config.producer.client)
    run_sidecar_loop(data, stats, config, stop, producer, load)


# The module each Kafka client setting imports when its first producer connects.
_CLIENT_MODULES = {"confluent-kafka": "confluent_kafka", "kafka-python": "kafka"}


def freeze_startup_heap(client: str) -> None:
    """Keep what start-up allocated out of the cyclic collector's full passes (as the scorer
    does after its own start-up).

    Why: the records waiting for the broker's acknowledgement (each with its delivery
    callback) outlive the young generations, so the sidecar ran a full collection every second
    or two, each walking the ~90,000 objects that importing onnxruntime, numpy and the Kafka
    client left behind: 93 ms a pass, about 6 us a record of the core it shares with the
    scorer in pinned mode (measured on the 2-core bench machine).  Frozen, those objects are
    never walked again.  The configured client's module is imported first, so its objects are
    frozen too."""
    module = _CLIENT_MODULES.get(client)
    if module is not None:
        with contextlib.suppress(ImportError):  # the producer says so when it connects
            importlib.import_module(module)
    gc.collect()
    gc.freeze()


# SpoolConfig and ShadowSpec are re-exported: the app builds the sidecar's whole configuration
# from here, and the scorer's side names the shadows it hands over.
__all__ = [
    "ProducerFactory",
    "RecordProducer",
    "ShadowLoader",
    "ShadowSpec",
    "SidecarConfig",
    "SidecarLoop",
    "SpoolConfig",
    "StopFlag",
    "run_sidecar_loop",
    "shed_share",
    "sidecar_process_main",
]
