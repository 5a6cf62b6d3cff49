"""`make bench-evidence`: the topic archive's speed and size (docs/archive.md).

    python -m benchmarks.evidence [--records 1000000] [--kafka-records 200000] [--out docs]

1. Archive: ``--kafka-records`` score records (and a tenth as many labels) are produced to a
   LocalStack broker, then ``shadowline archive --once``'s code archives them; records/s is
   reported with and without the consumer-group join, and the bytes per million records.
2. Analysis: an archive of ``--records`` score records (30 numeric inputs, a shadow, labels on
   a fifth of them) is written with the archive's own layout; in a child process, whose peak
   memory (ru_maxrss) is read, ``pair_archive`` pairs the shadow with production and
   ``compare`` runs the whole analysis on it (maturity, weights, every metric with its paired
   bootstrap interval): ``pair_seconds`` and ``seconds`` in all.
3. Replay: the benchmark model (LightGBM, 200 trees, benchmarks/model.py) is registered and
   ``shadowline replay``'s code scores every archived transaction with it.

Writes ``<out>/bench/evidence.json`` and prints a summary.  Targets: archive >= 20,000
records/s; reading and pairing 1,000,000 archived records < 10 s and < 1 GB; the whole analysis
of 1,000,000 score records and 200,000 labels < 60 s and < 1.5 GB; replay of 1,000,000 through
200 trees < 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from benchmarks.model import FIELD_NAMES, manifest_for, train
from registry.manifest import Decision
from registry.records import LabelRecord, ProductionScore, ScoreRecord, ShadowScore, encode
from retrain.evidence import layout

T0 = 1_795_000_000.0
DAY = 86_400.0
PER_FILE = 100_000


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.parquet"))


def archive_throughput(records: int, work: Path) -> dict[str, Any]:
    """Produce ``records`` score records and a tenth as many labels, then archive them once."""
    import confluent_kafka
    from prometheus_client import CollectorRegistry

    from retrain.evidence.archive_metrics import ArchiveMetrics
    from retrain.evidence.archiver import Archiver, group_consumer
    from retrain.settings import ArchiveSettings
    from shadowline.stack import LocalStack

    stack = LocalStack(work / "stack")
    components = stack.up(topics=["bench.scores", "bench.labels"])
    address = components[1].address
    try:
        rng = np.random.default_rng(3)
        producer = confluent_kafka.Producer({"bootstrap.servers": address, "linger.ms": 20})
        for i in range(records):
            record = ScoreRecord(
                transaction_id=f"tx-{i:08d}",
                request_id=f"r-{i}",
                scored_at=T0 + i * 0.5,
                model_name="fraud",
                production=ProductionScore(
                    version="v1",
                    score=float(rng.random()),
                    decision=Decision.ALLOW,
                    latency_ms=0.4,
                ),
                shadows=[
                    ShadowScore(version="v2", score=0.3, decision=Decision.ALLOW, latency_ms=0.5)
                ],
                inputs={name: round(float(rng.standard_normal()), 4) for name in FIELD_NAMES},
            )
            _send(producer, "bench.scores", encode(record))
            if i % 10 == 0:
                fraud = LabelRecord(
                    transaction_id=f"tx-{i:08d}",
                    is_fraud=i % 20 == 0,
                    label_time=T0 + i * 0.5 + 9 * DAY,
                    source="chargeback",
                )
                _send(producer, "bench.labels", encode(fraud))
        producer.flush(60)
        settings = ArchiveSettings(
            kafka_bootstrap=address, scores_topic="bench.scores", labels_topic="bench.labels"
        )
        root = work / "kafka-archive"
        consumer = group_consumer(settings)
        started = time.monotonic()
        archiver = Archiver(
            root,
            consumer,
            {"bench.scores": "scores", "bench.labels": "labels"},
            metrics=ArchiveMetrics(CollectorRegistry()),
            on_progress=lambda p: None,
        )
        while not consumer.assignment():
            archiver.poll()
        joined = time.monotonic()
        progress = archiver.run(once=True)
        done = time.monotonic()
        consumer.close()
    finally:
        stack.down()
    archived = sum(progress.archived.values())
    return {
        "records": archived,
        "join_s": round(joined - started, 2),
        "seconds": round(done - started, 2),
        "records_per_s": round(archived / (done - started)),
        "records_per_s_after_join": round(archived / (done - joined)),
        "scores_bytes_per_million": round(_size(root / "scores") / records * 1e6),
        "files": progress.files,
    }


def _send(producer: Any, topic: str, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, value=value)
            return
        except BufferError:
            producer.poll(0.1)


def write_big_archive(root: Path, n: int) -> None:
    """``n`` score records over ten days (production v1, shadow v2, 30 numeric inputs, an
    amount) and labels on a fifth of them, in the archive's layout, files of 100,000 rows."""
    rng = np.random.default_rng(11)
    for first in range(0, n, PER_FILE):
        count = min(PER_FILE, n - first)
        index = np.arange(first, first + count)
        at = T0 + index * (10 * DAY / n)
        inputs = rng.standard_normal((count, len(FIELD_NAMES)))
        production = rng.random(count)
        challenger = rng.random(count)
        fraud = rng.random(count) < 1 / (1 + np.exp(-(2 * inputs[:, 0] - 5)))
        day = layout.day_of(float(at[0]))
        name = layout.part_name("bench", 0, first, first + count - 1, 1, "parquet")
        layout.write_parquet(
            layout.day_dir(root, layout.SCORES, day) / name,
            _scores(index, at, inputs, production, challenger),
        )
        labeled = index % 5 == 0
        labels = pa.table(
            {
                "transaction_id": pa.array([f"tx-{i:08d}" for i in index[labeled]]),
                "is_fraud": pa.array(fraud[labeled]),
                "label_time": pa.array(((at[labeled] + 9 * DAY) * 1e6).astype(np.int64)).cast(
                    pa.timestamp("us", tz="UTC")
                ),
                "source": pa.array(["chargeback"] * int(labeled.sum())),
                "schema_version": pa.array(np.ones(int(labeled.sum()), np.int8)),
                "kafka_partition": pa.array(np.zeros(int(labeled.sum()), np.int32)),
                "kafka_offset": pa.array(index[labeled].astype(np.int64)),
            },
            schema=layout.LABEL_COLUMNS,
        )
        label_day = layout.day_of(float(at[0]) + 9 * DAY)
        layout.write_parquet(layout.day_dir(root, layout.LABELS, label_day) / name, labels)


def _decisions(scores: np.ndarray[Any, Any]) -> pa.Array:
    # A fraud team's rates: about 1% blocked, 4% reviewed.
    names = np.where(scores >= 0.99, "block", np.where(scores >= 0.95, "review", "allow"))
    return pa.array(names.tolist(), pa.string())


def _scores(
    index: np.ndarray[Any, Any],
    at: np.ndarray[Any, Any],
    inputs: np.ndarray[Any, Any],
    production: np.ndarray[Any, Any],
    challenger: np.ndarray[Any, Any],
) -> pa.Table:
    count = len(index)
    shadow = pa.StructArray.from_arrays(
        [
            pa.array(["v2"] * count),
            pa.array(challenger),
            _decisions(challenger),
            pa.array(np.full(count, 0.5)),
            pa.nulls(count, pa.string()),
        ],
        fields=list(layout.SHADOW_TYPE),
    )
    columns: dict[str, Any] = {
        "transaction_id": pa.array([f"tx-{i:08d}" for i in index]),
        "request_id": pa.array([f"r-{i}" for i in index]),
        "model_name": pa.array(["fraud"] * count),
        "scored_at": pa.array((at * 1e6).astype(np.int64)).cast(pa.timestamp("us", tz="UTC")),
        "schema_version": pa.array(np.full(count, 2, np.int8)),
        "production_version": pa.array(["v1"] * count),
        "production_score": pa.array(production),
        "production_decision": _decisions(production),
        "production_latency_ms": pa.array(np.full(count, 0.4)),
        "production_explored": pa.array(np.zeros(count, bool)),
        "production_exploration_share": pa.array(np.zeros(count)),
        "shadows": pa.ListArray.from_arrays(pa.array(np.arange(count + 1, dtype=np.int32)), shadow),
        "kafka_partition": pa.array(np.zeros(count, np.int32)),
        "kafka_offset": pa.array(index.astype(np.int64)),
        "input_amount": pa.array(np.round(np.exp(inputs[:, 1] + 3), 2)),
    }
    for k, name in enumerate(FIELD_NAMES):
        columns[layout.INPUT_PREFIX + name] = pa.array(np.round(inputs[:, k], 4))
    return pa.table(columns)


def pair_in_child(root: Path) -> dict[str, Any]:
    """Run ``pair_archive`` in a child process: its time, and its peak memory."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.evidence", "--pair", str(root)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result: dict[str, Any] = json.loads(out.stdout)
    result["peak_rss_mb"] = round(max(peak_kb, before) / 1024)
    return result


def _pair(root: Path) -> None:
    """Pair the shadow with production from the archive, then the whole comparison (maturity,
    weights, every metric with its paired bootstrap interval), as ``analyze`` does."""
    from retrain.evidence.archive_read import pair_archive
    from retrain.evidence.comparison import Options, compare

    started = time.monotonic()
    paired, sampling, production = pair_archive(
        root, "v2", model_name="fraud", amount_field="amount"
    )
    paired_s = time.monotonic() - started
    options = Options(as_of=T0 + 60 * DAY, seed=1)
    result = compare(paired, sampling, version="v2", production_version=production, options=options)
    seconds = time.monotonic() - started
    labeled = int((paired.label >= 0).sum())
    evidence = result.evidence
    print(
        json.dumps(
            {
                "seconds": round(seconds, 2),
                "pair_seconds": round(paired_s, 2),
                "compare_seconds": round(seconds - paired_s, 2),
                "paired": len(paired),
                "labeled": labeled,
                "matured_frauds": evidence.matured_frauds,
                "difference_ci": None
                if evidence.difference_ci is None
                else [evidence.difference_ci.low, evidence.difference_ci.high],
                "scores_read": sampling.scores_read,
                "production": production,
            }
        )
    )


def replay_speed(root: Path, work: Path) -> dict[str, Any]:
    """Register the 200-tree benchmark model and replay the whole archive through it."""
    from registry import FileArtifactStore, ModelRegistry
    from registry.config import SharedSettings
    from registry.connections import redis_client
    from retrain.evidence.replay import replay
    from shadowline.stack import LocalStack

    model = train()
    stack = LocalStack(work / "replay-stack")
    components = stack.up()
    try:
        settings = SharedSettings(redis_url=f"redis://{components[0].address}/0")
        registry = ModelRegistry(redis_client(settings), FileArtifactStore(work / "artifacts"))
        manifest = manifest_for(model.onnx_bytes, "c1")
        registry.register(model.onnx_bytes, manifest, actor="bench")
        result = replay(registry, "fraud", "c1", root)
        registry.close()
    finally:
        stack.down()
    return {
        "trees": model.n_trees,
        "transactions": result.read,
        "scored": result.scored,
        "seconds": round(result.seconds, 2),
        "per_second": round(result.read / result.seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--kafka-records", type=int, default=200_000)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--pair", type=Path, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.pair is not None:
        _pair(args.pair)
        return
    work = Path(tempfile.mkdtemp(prefix="shadowline-bench-evidence-"))
    try:
        results: dict[str, Any] = {
            "machine": f"{os.cpu_count()} cores",
            "load_before": os.getloadavg()[0],
        }
        results["archive"] = archive_throughput(args.kafka_records, work)
        print("archive:", results["archive"], flush=True)
        root = work / "big-archive"
        started = time.monotonic()
        write_big_archive(root, args.records)
        results["big_archive"] = {
            "records": args.records,
            "write_s": round(time.monotonic() - started, 1),
            "scores_bytes": _size(root / "scores"),
        }
        results["analysis"] = pair_in_child(root)
        print("analysis:", results["analysis"], flush=True)
        results["replay"] = replay_speed(root, work)
        print("replay:", results["replay"], flush=True)
        results["load_after"] = os.getloadavg()[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    target = args.out / "bench" / "evidence.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
