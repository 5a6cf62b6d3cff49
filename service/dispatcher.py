"""The shadow dispatcher: a bounded queue between the request path and the shadows.

The request handler only calls :meth:`ShadowDispatcher.submit` (a ``put_nowait``; when the queue
is full the request is shed and counted, never waited for).  One background thread drains the
queue in batches, runs the sampled shadows through :class:`service.shadow.ShadowRunner`, builds
one record per request (also when no shadow is configured) and hands it to the sink.

Why a thread and not a process: the measured per-request cost of this thread is a few
microseconds of Python (batched encode, one record dict, one ``orjson.dumps``) while
onnxruntime releases the GIL during ``run``; a process would add a pickle/pipe hop per request
on the event loop and a second copy of every shadow model.  The batch wait keeps the thread from
waking per request, which is what would take the GIL from the event loop most often.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable

import orjson

from service.live import LiveModels
from service.metrics import ServiceMetrics
from service.shadow import YIELD_EVERY, Scored, ShadowRunner, build_record

log = logging.getLogger(__name__)

Publish = Callable[[bytes, bytes], None]


class ShadowDispatcher:
    """Drains scored requests in batches: shadows, then one record each to ``publish``."""

    def __init__(
        self,
        live: LiveModels,
        publish: Publish,
        metrics: ServiceMetrics,
        *,
        queue_size: int,
        budget_s: float,
        batch_max: int = 128,
        batch_wait_s: float = 0.005,
        seed: int | None = None,
    ) -> None:
        self._live = live
        self._publish = publish
        self._metrics = metrics
        self._queue: queue.Queue[Scored] = queue.Queue(maxsize=queue_size)
        self._runner = ShadowRunner(metrics, budget_s)
        self._batch_max = batch_max
        self._batch_wait_s = batch_wait_s
        self._rng = random.Random(seed)  # noqa: S311 - sampling, not security
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None
        metrics.watch_queue(self._queue.qsize)

    def submit(self, item: Scored) -> None:
        """Called on the request path: enqueue or shed (counted).  Never blocks."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._metrics.shadow_shed.inc()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="shadow-dispatcher", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Process what is queued (up to ``timeout_s``), then stop the thread and executors."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self._runner.close()

    def drain(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything submitted so far has been handed to the sink (for tests and
        shutdown).  Returns False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.005)
        return False

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            batch = [first]
            if self._queue.qsize() < self._batch_max and not self._stop.is_set():
                # Let a batch gather instead of waking once per request.
                time.sleep(self._batch_wait_s)
            while len(batch) < self._batch_max:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self.process(batch)
            except Exception:  # keep the thread alive whatever a batch does
                log.exception("shadow dispatcher: a batch of %d failed", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()

    def process(self, batch: list[Scored]) -> None:
        """Run the current shadows over ``batch`` and publish one record per item."""
        slots = self._live.current.shadows
        self._runner.retain({slot.model.version for slot in slots})
        per_item = self._runner.run(slots, batch, self._rng) if slots else [[] for _ in batch]
        publish, dumps = self._publish, orjson.dumps
        for n, (item, shadows) in enumerate(zip(batch, per_item, strict=True), 1):
            publish(item.transaction_id.encode(), dumps(build_record(item, shadows)))
            if n % YIELD_EVERY == 0:
                time.sleep(0)  # hand the GIL to the event loop: it never waits for a whole batch
        self._metrics.records.inc(len(batch))
