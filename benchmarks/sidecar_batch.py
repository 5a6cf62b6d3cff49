"""What the sidecar's work costs a transaction, by the number of shadows at 100%.

The sidecar (:mod:`service.sidecar_loop`) takes each batch the scorer sends, runs the shadows
on it, builds one record per transaction and hands the records to the Kafka producer.  Each
shadow adds CPU on the machine the scorer shares: this measures how much, part by part, so a
change to that path can be judged by its numbers.

A :class:`~service.sidecar_loop.SidecarLoop` runs in a thread of this process, on a real pipe,
with the product's settings (``SHADOWLINE_*`` defaults) and its real producer, against a broker
of the project's local stack on 127.0.0.1.  This process plays the scorer: it sends batches of
the size the scorer sends at ``--rate`` (one every 20 ms), pickled as the scorer packs them,
and reads the CPU time of the loop's thread, of the shadows' threads and of the rest of the
process but its own thread (the producer's threads, mostly) over the run.  Each shadow count
runs ``--reps`` times, interleaved.

    .venv/bin/python -m benchmarks.sidecar_batch            # about 75 s on 2 cores

The shadows are variants of the benchmark model (:mod:`benchmarks.model`, 200 trees).
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.model import manifest_for, sample_rows, train, variant
from registry.manifest import Manifest
from service.pipe import Batch, ShadowSet, ShadowSpec, Stop, encode, send, send_frames
from service.shadow import Scored

SHADOW_COUNTS = (0, 1, 3)
BATCH_INTERVAL_S = 0.02  # the scorer's hand-over (SHADOWLINE_SHADOW_BATCH_WAIT_MS)
TOPIC = "bench.sidecar"
WARM_UP_BATCHES = 10


@dataclass(frozen=True)
class Shadows:
    """Shadow versions of one model (manifest and ONNX bytes each) and the input schema they
    share with production, the ``schema_key`` the scorer puts on each transaction."""

    versions: tuple[tuple[Manifest, bytes], ...]
    schema_key: str


def shadows_of(onnx: bytes, count: int = 3) -> Shadows:
    """``count`` shadow variants of the model ``onnx`` (s1, s2, ...)."""
    from service.models import load_model

    versions = []
    for i in range(1, count + 1):
        data = variant(onnx, f"s{i}")
        versions.append((manifest_for(data, f"s{i}", "fraud"), data))
    return Shadows(tuple(versions), load_model(*versions[0]).schema_key)


@functools.cache
def _rows() -> list[dict[str, float]]:
    return sample_rows(64, seed=11)


def transactions(n: int, *, schema_key: str, start: int = 0) -> list[Scored]:
    """``n`` scored transactions of the benchmark model, as the scorer hands them over."""
    rows = _rows()
    now = time.time()
    return [
        Scored(
            transaction_id=f"tx-{start + i}",
            request_id=f"r-{start + i:x}",
            scored_at=now,
            inputs=rows[i % 64],
            model_name="fraud",
            version="v1",
            schema_key=schema_key,
            score=0.1,
            decision="allow",
            latency_ms=0.05,
            size=900,
        )
        for i in range(n)
    ]


def _thread_cpu_s(names: tuple[str, ...]) -> float:
    """CPU seconds used so far by this process's threads whose names start with ``names``."""
    total = 0.0
    for thread in threading.enumerate():
        if thread.name.startswith(names) and thread.ident is not None:
            try:
                total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
            except OSError:  # it just ended
                continue
    return total


def measure(
    kafka: str,
    models: Shadows,
    shadows: int,
    rate: float,
    seconds: float,
    *,
    topic: str = TOPIC,
) -> dict[str, Any]:
    """One run: a sidecar loop with the first ``shadows`` of ``models`` fed batches at
    ``rate`` for ``seconds``, producing to ``topic``; CPU microseconds a transaction by part
    (the loop's thread, the shadows' threads, the rest of the process: the producer's threads),
    and the shadows' calls and errors (warm-up batches included)."""
    from service.app import sidecar_config
    from service.settings import ServiceSettings
    from service.sidecar_loop import SidecarLoop

    settings = ServiceSettings(kafka_bootstrap=kafka, scores_topic=topic, spool_max_bytes=0)
    config = sidecar_config(settings)
    data_recv, data_send = multiprocessing.Pipe(duplex=False)
    stats_recv, stats_send = multiprocessing.Pipe(duplex=False)
    stop = threading.Event()
    loop = SidecarLoop(data_recv, stats_send, config, stop)
    thread = threading.Thread(target=loop.run, name="sidecar-loop", daemon=True)
    drain = threading.Thread(target=_drain, args=(stats_recv,), daemon=True)
    drain.start()
    thread.start()
    try:
        specs = tuple(
            ShadowSpec(manifest, onnx, 1.0) for manifest, onnx in models.versions[:shadows]
        )
        send(data_send, ShadowSet(specs))
        deadline = time.monotonic() + 60
        while len(loop.tally.shadows_loaded) < shadows and time.monotonic() < deadline:
            time.sleep(0.05)
        per_batch = max(1, round(rate * BATCH_INTERVAL_S))
        _feed(data_send, models, WARM_UP_BATCHES, per_batch, 0.2)  # the producer connects
        time.sleep(0.5)
        before = _cpu_parts()
        count = int(seconds / BATCH_INTERVAL_S)
        _feed(data_send, models, count, per_batch, seconds)
        sent_at = time.monotonic()
        total = (count + WARM_UP_BATCHES) * per_batch
        while loop.tally.records < total and time.monotonic() < sent_at + 10:
            time.sleep(0.01)
        after = _cpu_parts()
        done = count * per_batch
        return {
            "shadows": shadows,
            "transactions": done,
            "shadow_errors": {f"{v} {k}": n for (v, k), n in loop.tally.shadow_errors.items()},
            "shadow_calls": {v: sum(h.counts) for v, h in loop.tally.inference.items()},
            "us_per_transaction": {
                part: round((after[part] - before[part]) / done * 1e6, 1) for part in before
            },
        }
    finally:
        send(data_send, Stop())
        thread.join(30)
        stop.set()
        data_send.close()


def _cpu_parts() -> dict[str, float]:
    """CPU seconds so far: the loop's thread, the shadows' threads, and the rest of the process
    but this (the scorer's) thread: the producer's threads, mostly."""
    loop_s = _thread_cpu_s(("sidecar-loop",))
    shadows_s = _thread_cpu_s(("shadow-",))
    return {
        "loop": loop_s,
        "shadows": shadows_s,
        "rest": time.process_time() - loop_s - shadows_s - _thread_cpu_s(("MainThread",)),
    }


def _feed(conn: Any, models: Shadows, count: int, size: int, seconds: float) -> None:
    """Send ``count`` batches of ``size`` transactions evenly over ``seconds``, each scored
    just before it leaves (a batch older than the sidecar's lag limit has its shadows shed)."""
    step = seconds / max(1, count)
    started = time.monotonic()
    for i in range(count):
        time.sleep(max(0.0, started + i * step - time.monotonic()))
        items = transactions(size, schema_key=models.schema_key, start=i * size)
        send_frames(conn, encode(Batch(items)))


def _drain(conn: Any) -> None:
    """Read the loop's reports (the scorer's reader thread), so its pipe never fills."""
    try:
        while True:
            conn.recv_bytes()
    except (EOFError, OSError):
        return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=3000.0, help="transactions a second")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each run")
    parser.add_argument("--reps", type=int, default=3, help="runs of each shadow count")
    args = parser.parse_args()

    from shadowline.stack import LocalStack

    models = shadows_of(train().onnx_bytes, max(SHADOW_COUNTS))
    with tempfile.TemporaryDirectory(prefix="sidecar-batch-") as tmp:
        stack = LocalStack(Path(tmp))
        comps = {c.name: c for c in stack.up(topics=[TOPIC])}
        try:
            runs = []
            for rep in range(args.reps):
                order = SHADOW_COUNTS if rep % 2 == 0 else SHADOW_COUNTS[::-1]
                for n in order:
                    runs.append(measure(comps["kafka"].address, models, n, args.rate, args.seconds))
        finally:
            stack.down()
    summary = {
        str(n): {
            part: statistics.median(
                r["us_per_transaction"][part] for r in runs if r["shadows"] == n
            )
            for part in ("loop", "shadows", "rest")
        }
        for n in SHADOW_COUNTS
    }
    print(
        json.dumps(
            {"rate": args.rate, "runs": runs, "median_us_per_transaction": summary}, indent=2
        )
    )


if __name__ == "__main__":
    main()
