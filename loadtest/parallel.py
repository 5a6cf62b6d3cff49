"""Several generator processes, one timetable, one merged result.

One Python process tops out at some tens of thousands of requests per second; ``procs`` > 1
spawns that many processes (``spawn``, so nothing of the parent's state or threads is
inherited).  Each opens its connections and reports ready; the parent then sets one common
start time a little in the future, and each process runs its round-robin share of the
timetable.  Their recorders come back HDR-encoded and are merged.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import queue
import time
from typing import Any, TypeVar

from loadtest.errors import LoadTestError
from loadtest.runner import RunConfig, run_in_this_process
from loadtest.stats import Recorder

T = TypeVar("T")
START_MARGIN_S = 0.05  # between "everyone is ready" and the common start
READY_TIMEOUT_S = 60.0


async def _now_gate() -> float:
    return time.time() + START_MARGIN_S


def run(cfg: RunConfig, *, isolate: bool = False) -> tuple[Recorder, float]:
    """Run ``cfg`` across ``cfg.procs`` processes; return the merged recorder and the common
    start (wall time).  One process runs in this one unless ``isolate`` (then it is spawned,
    so that this process's other threads cannot delay it through the GIL).  Raises
    :class:`LoadTestError` if a process fails or never gets ready."""
    if cfg.procs == 1 and not isolate:
        started: list[float] = []

        async def gate() -> float:
            started.append(await _now_gate())
            return started[0]

        return run_in_this_process(cfg, 0, gate), started[0] if started else time.time()
    ctx = mp.get_context("spawn")
    ready: mp.Queue[int] = ctx.Queue()
    results: mp.Queue[tuple[int, dict[str, Any] | str]] = ctx.Queue()
    start = ctx.Value("d", 0.0)
    go = ctx.Event()
    procs = [
        ctx.Process(target=_child, args=(cfg, k, ready, results, start, go), daemon=True)
        for k in range(cfg.procs)
    ]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            _get(ready, procs, READY_TIMEOUT_S)
        start.value = time.time() + START_MARGIN_S
        go.set()
        merged = Recorder()
        budget = cfg.duration_s + 2 * cfg.timeout_s + READY_TIMEOUT_S
        for _ in procs:
            k, wire = _get(results, procs, budget)
            if isinstance(wire, str):
                raise LoadTestError(f"generator process {k} failed: {wire}")
            merged.merge_wire(wire)
    except queue.Empty:
        raise LoadTestError("a generator process did not answer in time") from None
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():  # pragma: no cover - only when a child hangs
                p.kill()
                p.join()
        ready.close()
        results.close()
    return merged, float(start.value)


def _get(q: mp.Queue[T], procs: list[Any], timeout_s: float) -> T:
    """``q.get`` that gives up early when a child process died without answering."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return q.get(timeout=0.2)
        except queue.Empty:
            if time.monotonic() > deadline:
                raise
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead and q.empty():
                raise LoadTestError(
                    f"a generator process exited with code {dead[0].exitcode}"
                ) from None


def _child(
    cfg: RunConfig,
    index: int,
    ready: mp.Queue[int],
    results: mp.Queue[tuple[int, dict[str, Any] | str]],
    start: Any,
    go: Any,
) -> None:  # pragma: no cover - runs in a spawned process (covered by the integration test)
    async def gate() -> float:
        ready.put(index)
        await asyncio.to_thread(go.wait, READY_TIMEOUT_S)
        return float(start.value)

    try:
        rec = run_in_this_process(cfg, index, gate)
    except Exception as exc:  # reported to the parent, which raises LoadTestError
        results.put((index, f"{type(exc).__name__}: {exc}"))
        return
    results.put((index, rec.to_wire()))
