"""Helpers of the scorer's tests: real (tiny) models, loaded or failing; the admin token;
polling; scored transactions as the scorer hands them over; counts built from known samples
(the guard and drift tests); an in-memory producer for unit tests of the sidecar loop's logic
(the real producer is tested against the broker).  Registry moves come from
:mod:`tests.lifecycle`."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from registry.manifest import Manifest
from service.loader import ModelLoader
from service.metrics import LATENCY_BUCKETS, SCORE_BUCKETS, ServiceMetrics
from service.models import Feeds, LoadedModel, load_model
from service.pipe import Message, Report, Stop, receive, send
from service.producer import DeliveryListener, FailedRecord, ProducerConfig
from service.shadow import Scored
from service.sidecar_loop import SidecarConfig, SidecarLoop
from service.signals import Counts
from service.tally import Tally, bucket_counts
from tests.factories import logistic_model, make_manifest, random_rows
from tests.lifecycle import production as make_production
from tests.lifecycle import register

__all__ = ["make_production", "register"]  # the registry moves, under the tests' names

ADMIN_TOKEN = "test-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ROWS = random_rows(n=6, seed=11)

BLOCK_AT = 0.9  # the block threshold of tests.factories.make_manifest


def counts(scores: Sequence[float], latency_s: Sequence[float] | float = 0.001) -> Counts:
    """The Counts a production version has after scoring ``scores`` (blocked above 0.9), each
    model call taking ``latency_s`` (one value, or one per score)."""
    latencies = [latency_s] * len(scores) if isinstance(latency_s, float) else list(latency_s)
    return Counts(
        scored=len(scores),
        blocked=sum(1 for s in scores if s >= BLOCK_AT),
        scores=tuple(bucket_counts(np.array(SCORE_BUCKETS), scores)),
        latency=tuple(bucket_counts(np.array(LATENCY_BUCKETS), latencies)),
    )


# How long slow_load takes beyond the real load.
SLOW_LOAD_S = 2.0


def slow_load(manifest: Manifest, artifact: bytes) -> LoadedModel:
    """The sidecar's shadow loader, :data:`SLOW_LOAD_S` slower: a challenger that takes
    seconds to load (a large model, a cold disk).  Module level, so a sidecar process can be
    handed it."""
    time.sleep(SLOW_LOAD_S)
    return load_model(manifest, artifact)


def loaded(version: str, bias: float = -2.0) -> LoadedModel:
    """A real logistic model loaded by the scorer's own loader."""
    model = logistic_model(bias=bias)
    return load_model(make_manifest(model, version=version), model)


def build(version: str = "v1", bias: float = -2.0, name: str = "fraud") -> LoadedModel:
    """A real logistic model, loaded and warmed by the scorer's own loader."""
    model = logistic_model(bias=bias)
    return load_model(make_manifest(model, name=name, version=version), model)


class FailingModel(LoadedModel):
    """A shadow whose inference raises (as a broken graph or runtime would)."""

    __slots__ = ()

    def run(self, feeds: Feeds) -> npt.NDArray[np.float64]:
        raise RuntimeError("model exploded")


class HangingModel(LoadedModel):
    """A shadow whose inference blocks until ``release`` is set."""

    __slots__ = ()
    release = threading.Event()

    def run(self, feeds: Feeds) -> npt.NDArray[np.float64]:
        self.release.wait(10)
        return super().run(feeds)


class SlowModel(LoadedModel):
    """A shadow that waits ``wait_s`` without using CPU before it scores (as a starved thread
    would)."""

    __slots__ = ()
    wait_s = 0.2

    def run(self, feeds: Feeds) -> npt.NDArray[np.float64]:
        time.sleep(self.wait_s)
        return super().run(feeds)


class SpinningModel(LoadedModel):
    """A shadow that burns CPU until ``release`` is set (as a pathologically slow graph)."""

    __slots__ = ()
    release = threading.Event()

    def run(self, feeds: Feeds) -> npt.NDArray[np.float64]:
        deadline = time.monotonic() + 10
        while not self.release.is_set() and time.monotonic() < deadline:
            sum(range(1000))
        return super().run(feeds)


def variant(cls: type[LoadedModel], manifest: Manifest, artifact: bytes) -> LoadedModel:
    session = ort.InferenceSession(artifact, providers=["CPUExecutionProvider"])
    return cls(manifest, session, loaded_at=0.0)


def sample_value(metrics: ServiceMetrics, name: str, labels: dict[str, str] | None = None) -> float:
    """A metric's current value from the registry (0 when the series does not exist)."""
    value = metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


def wait_until(
    condition: Callable[[], bool], timeout_s: float = 10.0, step_s: float = 0.02
) -> bool:
    """Poll ``condition`` until it holds; False after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step_s)
    return condition()


def scored(production: LoadedModel, n: int = 6, scored_at: float | None = None) -> list[Scored]:
    """``n`` transactions scored by ``production`` (now), as the scorer hands them over."""
    scored_at = time.time() if scored_at is None else scored_at
    out = []
    for i, row in enumerate(ROWS[:n]):
        score = float(production.score([row])[0])
        decision = production.decide(score).value
        out.append(
            Scored(
                transaction_id=f"t{i}",
                request_id=f"r{i}",
                scored_at=scored_at,
                inputs=row,
                model_name=production.name,
                version=production.version,
                schema_key=production.schema_key,
                score=score,
                decision=decision,
                latency_ms=0.05,
                size=400,
            )
        )
    return out


class MemoryProducer:
    """A :class:`service.sidecar_loop.RecordProducer` that keeps what it is sent.

    Each record is acknowledged at once, or failed at once while ``failing_now``; the test
    sets ``ready_now`` (a broker is there) and ``room`` (below its in-flight limit)."""

    def __init__(self, config: ProducerConfig, tally: Tally, listener: DeliveryListener) -> None:
        self.config = config
        self._tally = tally
        self._listener = listener
        self.sent: list[tuple[bytes, bytes]] = []
        self.acked = 0  # records of send_records acknowledged
        self.ready_now = True
        self.room = True
        self.failing_now = False
        self._broken = False
        self.closed = 0

    @property
    def ready(self) -> bool:
        return self.ready_now

    @property
    def failing(self) -> bool:
        return self.failing_now

    @property
    def broken(self) -> bool:
        return self._broken

    def full(self) -> bool:
        self._tally.kafka_full = not self.room
        return not self.room

    def send(self, key: bytes, value: bytes, tag: Hashable) -> None:
        if self.failing_now:
            self._broken = True
            self._listener.on_failed(tag, ConnectionError("the broker is away"))
            return
        self.sent.append((key, value))
        self._listener.on_acked(tag)

    def send_records(self, records: list[tuple[bytes, bytes]]) -> None:
        for key, value in records:
            if self.failing_now:
                self._broken = True
                failed = FailedRecord(key, value)
                self._listener.on_failed(failed, ConnectionError("the broker is away"))
                continue
            self.sent.append((key, value))
            self.acked += 1

    def ensure(self) -> bool:
        self._tally.connected = self.ready_now
        return self.ready_now

    def check(self) -> None:
        return None

    def close(self, timeout_s: float) -> None:
        self._broken = False
        self.closed += 1


class MemoryProducers:
    """A producer factory for the sidecar loop that remembers what it built; each starts with
    a broker (``ready``) or without."""

    def __init__(self, *, ready: bool = True) -> None:
        self.built: list[MemoryProducer] = []
        self._ready = ready

    def __call__(
        self, config: ProducerConfig, tally: Tally, listener: DeliveryListener
    ) -> MemoryProducer:
        producer = MemoryProducer(config, tally, listener)
        producer.ready_now = self._ready
        self.built.append(producer)
        return producer

    @property
    def last(self) -> MemoryProducer:
        return self.built[-1]


class LoopRun:
    """A :class:`service.sidecar_loop.SidecarLoop` running in a thread on real pipes, fed
    messages as the scorer would send them, its producer built by ``producers``."""

    def __init__(
        self,
        config: SidecarConfig,
        producers: MemoryProducers,
        load: Callable[[Manifest, bytes], LoadedModel] = load_model,
    ) -> None:
        self._data_recv, self._data = multiprocessing.Pipe(duplex=False)
        self._stats, self._stats_send = multiprocessing.Pipe(duplex=False)
        self.stop = threading.Event()
        self.loop = SidecarLoop(
            self._data_recv, self._stats_send, config, self.stop, load=load, producer=producers
        )
        self.producer = producers.last
        self._thread = threading.Thread(target=self.loop.run, daemon=True)
        self._thread.start()

    def send(self, message: Message) -> None:
        send(self._data, message)

    def loaded(self, *versions: str) -> bool:
        """Wait until the loop scores with exactly ``versions`` (its loads run beside it)."""
        return wait_until(lambda: self.loop.tally.shadows_loaded == versions)

    def send_frame(self, frame: bytes) -> None:
        """A raw frame, as no message would look."""
        self._data.send_bytes(frame)

    def finish(self) -> Tally:
        """Send Stop, wait for the loop to end; its last report."""
        self.send(Stop())
        self._thread.join(30)
        assert not self._thread.is_alive()
        last = None
        while True:
            try:
                message = receive(self._stats)
            except (EOFError, OSError):
                break
            assert isinstance(message, Report)
            last = message.tally
        self._data.close()
        self._stats.close()
        assert last is not None
        return last


class CountingLoader(ModelLoader):
    """A real :class:`service.loader.ModelLoader` that counts its reconciles."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reconciles = 0

    def reconcile(self, *, force: bool = False) -> bool:
        self.reconciles += 1
        return super().reconcile(force=force)


# The system's Chromium (``make system-deps``) for the browser tests, through Playwright;
# Playwright's own browser download is never used.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
