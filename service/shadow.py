"""Shadow mode as logic: sample the shadows, run them within a time budget, build the record.

No FastAPI, no Redis, no Kafka here: :class:`service.dispatcher.ShadowDispatcher` feeds batches
in and hands the records on.  Each shadow runs on an executor of its own, so a shadow that hangs
holds only its own thread: after ``budget_s`` its rows are recorded as timeouts, later batches
as ``busy`` until it returns, and the other shadows are not held up.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from registry.records import SCORE_SCHEMA_VERSION
from service.live import ShadowSlot
from service.metrics import ServiceMetrics
from service.models import Feeds, LoadedModel

ShadowEntry = dict[str, Any]
YIELD_EVERY = 32  # rows of Python work between two offers of the GIL to the event loop


@dataclass(slots=True)
class Scored:
    """A production-scored request on its way to the shadows and the sink."""

    transaction_id: str
    request_id: str
    scored_at: float
    inputs: dict[str, Any]
    model: LoadedModel
    score: float
    decision: str
    latency_ms: float
    # The graph inputs production ran on (one row): a shadow with the same input schema
    # reuses them instead of encoding the row again in Python.
    feeds: Feeds


def sample(slots: tuple[ShadowSlot, ...], n: int, rng: random.Random) -> list[list[int]]:
    """For each shadow, the indices (of ``n`` requests) it scores, each kept with its rate."""
    picked = []
    for slot in slots:
        if slot.rate >= 1.0:
            picked.append(list(range(n)))
        else:
            picked.append([i for i in range(n) if rng.random() < slot.rate])
    return picked


def build_record(item: Scored, shadows: list[ShadowEntry]) -> dict[str, Any]:
    """The scores-topic value for ``item`` (the shape of ``registry.records.ScoreRecord``)."""
    return {
        "schema_version": SCORE_SCHEMA_VERSION,
        "transaction_id": item.transaction_id,
        "request_id": item.request_id,
        "scored_at": item.scored_at,
        "model_name": item.model.name,
        "production": {
            "version": item.model.version,
            "score": item.score,
            "decision": item.decision,
            "latency_ms": item.latency_ms,
        },
        "shadows": shadows,
        "inputs": item.inputs,
    }


def _error(version: str, message: str) -> ShadowEntry:
    return {"version": version, "score": None, "decision": None, "latency_ms": None,
            "error": message}  # fmt: skip


def _timed_run(model: LoadedModel, feeds: Feeds) -> tuple[Any, float]:
    started = time.perf_counter()
    scores = model.run(feeds)
    return scores, time.perf_counter() - started


class ShadowRunner:
    """Runs shadow models over batches, each on its own single-thread executor.

    ``run`` never raises because of a shadow: an exception, a timeout, an invalid row or a
    still-busy shadow becomes an ``error`` entry on the affected records (and a metric).
    """

    def __init__(self, metrics: ServiceMetrics, budget_s: float) -> None:
        self._metrics = metrics
        self._budget_s = budget_s
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._pending: dict[str, Future[tuple[Any, float]]] = {}
        self._same: dict[tuple[str, str], bool] = {}

    def run(
        self, slots: tuple[ShadowSlot, ...], batch: list[Scored], rng: random.Random
    ) -> list[list[ShadowEntry]]:
        """Shadow entries per item of ``batch`` (in the order of ``slots``)."""
        entries: list[list[ShadowEntry]] = [[] for _ in batch]
        started: list[tuple[ShadowSlot, list[int], Future[tuple[Any, float]]]] = []
        for slot, indices in zip(slots, sample(slots, len(batch), rng), strict=True):
            version = slot.model.version
            feeds, valid = self._feeds(slot.model, batch, indices, entries)
            if not valid:
                continue
            previous = self._pending.get(version)
            if previous is not None and not previous.done():
                self._fail(version, "busy", "busy: its previous batch is still running",
                           valid, entries)  # fmt: skip
                continue
            executor = self._executors.get(version)
            if executor is None:
                executor = ThreadPoolExecutor(1, thread_name_prefix=f"shadow-{version}")
                self._executors[version] = executor
            future = executor.submit(_timed_run, slot.model, feeds)
            self._pending[version] = future
            started.append((slot, valid, future))
        deadline = time.monotonic() + self._budget_s
        for slot, valid, future in started:
            self._collect(slot.model, valid, future, deadline, batch, entries)
        return entries

    def _same_schema(self, production: LoadedModel, shadow: LoadedModel) -> bool:
        key = (production.ref, shadow.ref)  # versions are immutable, so refs identify schemas
        same = self._same.get(key)
        if same is None:
            same = self._same[key] = production.codec.schema == shadow.codec.schema
        return same

    def _feeds(
        self,
        model: LoadedModel,
        batch: list[Scored],
        indices: list[int],
        entries: list[list[ShadowEntry]],
    ) -> tuple[Feeds, list[int]]:
        """The graph inputs of the rows this shadow scores, and their indices.

        When the shadow's schema is production's, production's encoded rows are stacked (in
        C); otherwise each row is checked against the shadow's own schema (a refused row
        becomes an ``input`` error) and encoded again.
        """
        if all(self._same_schema(batch[i].model, model) for i in indices):
            names = model.codec.input_names
            stacked = {n: np.concatenate([batch[i].feeds[n] for i in indices]) for n in names}
            return stacked, indices
        rows, valid = [], []
        for i in indices:
            problems = model.check(batch[i].inputs)
            if problems:
                self._metrics.shadow_errors.labels(model.version, "input").inc()
                entries[i].append(_error(model.version, f"input: {problems[0]}"))
                continue
            rows.append(batch[i].inputs)
            valid.append(i)
        return (model.encode(rows) if rows else {}), valid

    def _collect(
        self,
        model: LoadedModel,
        valid: list[int],
        future: Future[tuple[Any, float]],
        deadline: float,
        batch: list[Scored],
        entries: list[list[ShadowEntry]],
    ) -> None:
        version = model.version
        try:
            scores, seconds = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            budget_ms = self._budget_s * 1000
            self._fail(version, "timeout", f"timeout: no result within {budget_ms:g} ms",
                       valid, entries)  # fmt: skip
            return
        except Exception as exc:  # a shadow's failure must never reach the caller
            self._fail(version, "error", f"error: {type(exc).__name__}: {exc}", valid, entries)
            return
        self._record(model, valid, scores, seconds, entries)

    def _record(
        self,
        model: LoadedModel,
        valid: list[int],
        scores: npt.NDArray[np.float64],
        seconds: float,
        entries: list[list[ShadowEntry]],
    ) -> None:
        version, decide = model.version, model.decide
        latency_ms = seconds * 1000
        observe = self._metrics.scores.labels("shadow", version).observe
        self._metrics.inference_seconds.labels("shadow", version).observe(seconds)
        counts: dict[str, int] = {}
        for n, (i, score) in enumerate(zip(valid, scores.tolist(), strict=True), 1):
            decision = decide(score).value
            counts[decision] = counts.get(decision, 0) + 1
            observe(score)
            entries[i].append({"version": version, "score": score, "decision": decision,
                               "latency_ms": latency_ms, "error": None})  # fmt: skip
            if n % YIELD_EVERY == 0:
                time.sleep(0)  # let the event loop have the GIL: it never waits for a batch
        for decision, count in counts.items():
            self._metrics.decisions.labels("shadow", version, decision).inc(count)

    def _fail(
        self,
        version: str,
        kind: str,
        message: str,
        valid: list[int],
        entries: list[list[ShadowEntry]],
    ) -> None:
        self._metrics.shadow_errors.labels(version, kind).inc(len(valid))
        for i in valid:
            entries[i].append(_error(version, message))

    def retain(self, versions: set[str]) -> None:
        """Stop the executors of shadows no longer in ``versions`` (without waiting: a hung
        shadow's thread cannot be interrupted, it ends when its call returns)."""
        for version in set(self._executors) - versions:
            self._executors.pop(version).shutdown(wait=False, cancel_futures=True)
            self._pending.pop(version, None)
            self._same.clear()

    def close(self) -> None:
        self.retain(set())
