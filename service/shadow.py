"""Shadow mode as logic: sample the shadows, run them within a budget, build the record.

No FastAPI, no Redis, no Kafka here: the sidecar loop (:mod:`service.sidecar_loop`) feeds
batches in and sends the records on.  Each shadow runs on the whole batch in one call (its
sampled rows as one N-row input), the shadows one after the other, each on an executor of its
own, so a shadow that hangs holds only its own thread.

Budgets.  A call that has used more than ``budget_s`` of CPU (the shadow's own cost, measured
on its thread's clock), or has not returned within ``wait_s`` (it hangs), is given up: its rows
are recorded as timeouts, later batches as ``busy`` (at once) until it returns, and the other
shadows are not held up.  Waiting for the CPU is not the shadow's fault, so it is never a
timeout: a sidecar that gets too little CPU falls behind, and its loop sheds rows up front
(``shed``), before running anything.  Counts go to a :class:`service.tally.Tally`, which the
scorer adds to its Prometheus metrics.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from registry.records import SCORE_SCHEMA_VERSION
from service.live import ShadowModel, ShadowSlot
from service.models import Feeds, LoadedModel
from service.priority import low_priority_executor
from service.tally import Tally

log = logging.getLogger(__name__)
ShadowEntry = dict[str, Any]


class Scored(NamedTuple):
    """A production-scored transaction on its way to the shadows and the scores topic.

    A plain tuple: the scorer pickles batches of them to the sidecar process.
    """

    transaction_id: str
    request_id: str
    scored_at: float
    inputs: dict[str, Any]
    model_name: str
    version: str  # production's
    schema_key: str  # production's input schema (``LoadedModel.schema_key``)
    score: float
    decision: str
    latency_ms: float
    size: int  # bytes of request body it came from (bounds what the scorer holds)
    # Exploration (``SHADOWLINE_EXPLORATION_SHARE``): a would-be block answered ``review``
    # (``decision`` stays the model's ``block``), and the share in force when it was scored.
    explored: bool = False
    exploration_share: float = 0.0


def sample(
    slots: tuple[ShadowSlot[ShadowModel], ...], n: int, rng: random.Random
) -> list[list[int]]:
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
        "model_name": item.model_name,
        "production": {
            "version": item.version,
            "score": item.score,
            "decision": item.decision,
            "latency_ms": item.latency_ms,
            "explored": item.explored,
            "exploration_share": item.exploration_share,
        },
        "shadows": shadows,
        "inputs": item.inputs,
    }


def error_entry(version: str, message: str) -> ShadowEntry:
    """A shadow's entry on a record when it produced no score."""
    return {
        "version": version,
        "score": None,
        "decision": None,
        "latency_ms": None,
        "error": message,
    }


class _Call:
    """One shadow call on its executor's thread, with that thread's CPU clock."""

    __slots__ = ("clock", "cpu_started", "model")

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.clock: int | None = None
        self.cpu_started = 0.0

    def __call__(self, feeds: Feeds) -> tuple[Any, float]:
        self.clock = time.pthread_getcpuclockid(threading.get_ident())
        self.cpu_started = time.clock_gettime(self.clock)
        started = time.perf_counter()
        scores = self.model.run(feeds)
        return scores, time.perf_counter() - started

    def cpu_s(self) -> float:
        """CPU seconds the call has used so far (0 before it started)."""
        if self.clock is None:
            return 0.0
        return time.clock_gettime(self.clock) - self.cpu_started


class ShadowRunner:
    """Runs shadow models over batches, each on its own single-thread executor whose thread
    runs ``niceness`` lower than the caller's.

    ``run`` never raises because of a shadow: an exception, a timeout, an invalid row, a
    still-busy shadow or a shed row becomes an ``error`` entry on the affected records (and
    a count in the tally).
    """

    def __init__(
        self, tally: Tally, budget_s: float, *, wait_s: float = 1.0, niceness: int = 0
    ) -> None:
        self._tally = tally
        self._budget_s = budget_s
        self._wait_s = max(wait_s, budget_s)
        self._niceness = niceness
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._pending: dict[str, Future[tuple[Any, float]]] = {}

    def run(
        self,
        slots: tuple[ShadowSlot[LoadedModel], ...],
        batch: list[Scored],
        rng: random.Random,
        *,
        shed: str | None = None,
        shed_share: float = 1.0,
    ) -> list[list[ShadowEntry]]:
        """Shadow entries per item of ``batch`` (in the order of ``slots``).  With ``shed``
        (the reason), a ``shed_share`` of the rows (all by default; the same rows for every
        shadow) run no shadow: each sampled one gets a ``shed`` error entry instead."""
        entries: list[list[ShadowEntry]] = [[] for _ in batch]
        shared: dict[tuple[str, tuple[int, ...]], Feeds] = {}
        dropped = _shed_rows(len(batch), shed, shed_share, rng)
        for slot, sampled in zip(slots, sample(slots, len(batch), rng), strict=True):
            version = slot.model.version
            indices = sampled
            shed_here = [i for i in sampled if i in dropped]
            if shed_here:
                indices = [i for i in sampled if i not in dropped]
                self._fail(version, "shed", f"shed: {shed}", shed_here, entries)
            if not indices:
                continue
            feeds, valid = self._feeds(slot.model, batch, indices, entries, shared)
            if not valid:
                continue
            previous = self._pending.get(version)
            if previous is not None and not previous.done():
                self._fail(
                    version, "busy", "busy: its previous batch is still running", valid, entries
                )
                continue
            executor = self._executors.get(version)
            if executor is None:
                executor = low_priority_executor(self._niceness, f"shadow-{version}")
                self._executors[version] = executor
            call = _Call(slot.model)
            future = executor.submit(call, feeds)
            self._pending[version] = future
            # One shadow at a time: the sidecar never takes more than one core for inference
            # from the scorer it shares the machine with (measured on 2 cores: p99 ratio with 3
            # shadows 1.49x running them at once).
            self._collect(slot.model, valid, call, future, entries)
        return entries

    def _feeds(
        self,
        model: LoadedModel,
        batch: list[Scored],
        indices: list[int],
        entries: list[list[ShadowEntry]],
        shared: dict[tuple[str, tuple[int, ...]], Feeds],
    ) -> tuple[Feeds, list[int]]:
        """The graph inputs of the rows this shadow scores, and their indices.

        A row production checked against the same input schema is encoded as it is; any other
        row is first checked against the shadow's own schema (a refused row becomes an
        ``input`` error).  Shadows with the same schema and rows share one encoding
        (``shared``, per batch; onnxruntime does not write to its inputs).
        """
        key = model.schema_key
        cached = shared.get((key, tuple(indices)))
        if cached is not None:
            return cached, indices
        rows, valid = [], []
        for i in indices:
            item = batch[i]
            problems = [] if item.schema_key == key else model.check(item.inputs)
            if problems:
                self._tally.shadow_error(model.version, "input")
                entries[i].append(error_entry(model.version, f"input: {problems[0]}"))
                continue
            rows.append(item.inputs)
            valid.append(i)
        feeds = model.encode(rows) if rows else {}
        if len(valid) == len(indices):  # no refused row: nothing to replay for the next one
            shared[(key, tuple(indices))] = feeds
        return feeds, valid

    def _collect(
        self,
        model: LoadedModel,
        valid: list[int],
        call: _Call,
        future: Future[tuple[Any, float]],
        entries: list[list[ShadowEntry]],
    ) -> None:
        """Wait for ``call``: its result, or a timeout once it has used ``budget_s`` of CPU or
        ``wait_s`` have passed (checked every ``budget_s``)."""
        version = model.version
        deadline = time.monotonic() + self._wait_s
        while True:
            try:
                step = min(self._budget_s, deadline - time.monotonic())
                scores, seconds = future.result(timeout=max(0.0, step))
            except FutureTimeout:
                problem = self._overrun(call, deadline)
                if problem is None:
                    continue
                self._fail(version, "timeout", f"timeout: {problem}", valid, entries)
                return
            except Exception as exc:  # a shadow's failure must never reach the caller
                message = f"error: {type(exc).__name__}: {exc}"
                self._fail(version, "error", message, valid, entries)
                return
            self._record(model, valid, scores, seconds, entries)
            return

    def _overrun(self, call: _Call, deadline: float) -> str | None:
        """Why a call still running is given up, or None to wait on."""
        used = call.cpu_s()
        if used > self._budget_s:
            return f"it used {used * 1000:.0f} ms of CPU, over its {self._budget_s * 1000:g} ms"
        if time.monotonic() >= deadline:
            return f"no result within {self._wait_s * 1000:g} ms"
        return None

    def _record(
        self,
        model: LoadedModel,
        valid: list[int],
        scores: npt.NDArray[np.float64],
        seconds: float,
        entries: list[list[ShadowEntry]],
    ) -> None:
        version = model.version
        latency_ms = seconds * 1000
        values = scores.tolist()
        decisions = model.manifest.thresholds.decisions(values)
        counts: dict[str, int] = {}
        for i, score, decision in zip(valid, values, decisions, strict=True):
            counts[decision] = counts.get(decision, 0) + 1
            entries[i].append(
                {
                    "version": version,
                    "score": score,
                    "decision": decision,
                    "latency_ms": latency_ms,
                    "error": None,
                }
            )
        self._tally.shadow_scored(version, seconds, values, counts)

    def _fail(
        self,
        version: str,
        kind: str,
        message: str,
        valid: list[int],
        entries: list[list[ShadowEntry]],
    ) -> None:
        self._tally.shadow_error(version, kind, len(valid))
        for i in valid:
            entries[i].append(error_entry(version, message))

    def retain(self, versions: set[str]) -> None:
        """Stop the executors of shadows no longer in ``versions`` (without waiting: a hung
        shadow's thread cannot be interrupted, it ends when its call returns)."""
        for version in set(self._executors) - versions:
            self._executors.pop(version).shutdown(wait=False, cancel_futures=True)
            self._pending.pop(version, None)

    def close(self) -> None:
        self.retain(set())


def _shed_rows(n: int, shed: str | None, share: float, rng: random.Random) -> set[int]:
    """Which of ``n`` rows to shed: none without a reason, all at ``share`` 1, else each
    with probability ``share``."""
    if shed is None or share <= 0.0:
        return set()
    if share >= 1.0:
        return set(range(n))
    return {i for i in range(n) if rng.random() < share}
