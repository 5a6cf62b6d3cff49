"""What a promotion's model load and release cost the scorer's event loop, by model size.

A promotion loads the new production model on a worker thread (:func:`service.models.load_model`:
the onnxruntime session built, the contract checked, the golden examples replayed) and, a
change later, releases a model no longer kept (:mod:`service.loader`).  Both run in the
scorer's process, so whatever part of them holds the interpreter lock holds the event loop
too: no request is answered meanwhile.  Issue 12 allows a change 2 ms of that.

This measures both against model size.  While a worker thread loads (or drops the last
reference to) a model, the main thread sleeps 0.2 ms again and again and records how late
each wake is; its largest lateness is the longest the interpreter lock was out of its reach.
A release runs under the lock from start to end (onnxruntime frees the session's memory in
its destructor, which Python calls holding the lock), so its own duration is also reported.
Each size is measured ``REPS`` times; the idle row is the same probe with no worker, what the
machine alone gives.

    .venv/bin/python -m benchmarks.model_swap            # about a minute on 2 cores

Models: the benchmark model's recipe (:mod:`benchmarks.model`) with more or fewer trees.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks.model import manifest_for, train

SIZES = (200, 1000, 2000, 5000)
REPS = 7
PROBE_SLEEP_S = 0.0002


def worst_wake_ms(work: Callable[[], object]) -> tuple[float, float]:
    """Run ``work`` on a thread; the main thread's largest wake lateness meanwhile (ms), the
    final wake included, and the work's own duration (ms).  What ``work`` raises is raised
    here (a model that fails to load ends the study instead of leaving the probe waiting)."""
    go, done = threading.Event(), threading.Event()
    took: list[float] = []
    failed: list[BaseException] = []

    def run() -> None:
        go.wait()
        t0 = time.perf_counter()
        try:
            work()
            took.append(time.perf_counter() - t0)
        except BaseException as exc:  # handed to the caller's thread
            failed.append(exc)
        finally:
            done.set()

    worst = 0.0
    thread = threading.Thread(target=run)
    thread.start()
    # The work starts only once the probe runs: a thread started straight away could take the
    # lock before the probe's first reading, and a hold at the start would go unseen.
    go.set()
    while True:
        t0 = time.perf_counter()
        time.sleep(PROBE_SLEEP_S)
        worst = max(worst, time.perf_counter() - t0 - PROBE_SLEEP_S)
        if done.is_set():
            break
    thread.join()
    if failed:
        raise failed[0]
    return worst * 1e3, took[0] * 1e3


def idle_wake_ms(seconds: float) -> float:
    """The same probe's largest lateness over ``seconds`` with nothing else running."""
    return worst_wake_ms(lambda: time.sleep(seconds))[0]


def measure(trees: int, reps: int = REPS) -> dict[str, Any]:
    from service.models import LoadedModel, load_model

    model = train(trees=trees)
    manifest = manifest_for(model.onnx_bytes, "v1", "fraud", trees=trees)
    held: list[LoadedModel] = []
    load_hold, load_ms, free_hold, free_ms = [], [], [], []
    for _ in range(reps):
        hold, took = worst_wake_ms(lambda: held.append(load_model(manifest, model.onnx_bytes)))
        load_hold.append(hold)
        load_ms.append(took)
        hold, took = worst_wake_ms(held.clear)
        free_hold.append(hold)
        free_ms.append(took)
    return {
        "trees": trees,
        "onnx_mib": round(len(model.onnx_bytes) / 2**20, 2),
        "load_ms": round(statistics.median(load_ms), 1),
        "load_hold_ms": round(statistics.median(load_hold), 2),
        "load_hold_max_ms": round(max(load_hold), 2),
        "release_ms": round(statistics.median(free_ms), 2),
        "release_hold_ms": round(statistics.median(free_hold), 2),
        "release_hold_max_ms": round(max(free_hold), 2),
    }


def table(rows: list[dict[str, Any]], idle: list[float]) -> str:
    lines = [
        "| trees | ONNX | load | loop held, load: median (max) | release | loop held, "
        "release: median (max) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['trees']:,} | {r['onnx_mib']} MiB | {r['load_ms']} ms | "
            f"{r['load_hold_ms']} ({r['load_hold_max_ms']}) ms | {r['release_ms']} ms | "
            f"{r['release_hold_ms']} ({r['release_hold_max_ms']}) ms |"
        )
    lines.append(f"| idle, 0.2 s | | | {statistics.median(idle):.2f} ({max(idle):.2f}) ms | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.model_swap", description=__doc__)
    parser.add_argument("--trees", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--reps", type=int, default=REPS)
    args = parser.parse_args(argv)
    rows = [measure(trees, args.reps) for trees in args.trees]
    idle = [idle_wake_ms(0.2) for _ in range(args.reps)]
    print(table(rows, idle))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
