"""Archives built by hand with the archive's own layout, and varied traffic to pair."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from prometheus_client import CollectorRegistry

from registry.manifest import Decision
from registry.records import LabelRecord, ProductionScore, ScoreRecord
from retrain.evidence import layout
from retrain.evidence.archive_metrics import ArchiveMetrics
from retrain.evidence.archiver import ArchiveProgress, Archiver, group_consumer
from retrain.evidence.layout import R
from retrain.features import add_features
from retrain.schema import MODEL_SCHEMA
from retrain.settings import ArchiveSettings
from tests.retrain.evidence.records import T0, label, scored, shadow

DAY = 86_400.0


def write_archive(
    root: Path,
    scores: Sequence[ScoreRecord],
    labels: Sequence[LabelRecord],
    *,
    topic: str = "t",
    batch: int = 500,
) -> None:
    """Write ``scores`` and ``labels`` as the archiver would: batches of one partition, one
    file per day a batch spans, offsets in record order."""
    _write(root, layout.SCORES, scores, layout.score_table, topic, batch)
    _write(root, layout.LABELS, labels, layout.label_table, topic, batch)


def _write(
    root: Path,
    kind: str,
    records: Sequence[R],
    to_table: Callable[[list[layout.Located[R]]], pa.Table],
    topic: str,
    batch: int,
) -> None:
    for first in range(0, len(records), batch):
        chunk = records[first : first + batch]
        rows = [
            layout.Located(record=r, partition=0, offset=first + i) for i, r in enumerate(chunk)
        ]
        days = layout.split_by_day(rows)
        for day, part in days.items():
            name = layout.part_name(topic, 0, first, rows[-1].offset, len(days), "parquet")
            layout.write_parquet(layout.day_dir(root, kind, day) / name, to_table(part))


def messy_traffic(n: int, seed: int = 3) -> tuple[list[ScoreRecord], list[LabelRecord]]:
    """Traffic with everything pairing must handle: challenger errors, records repeated with a
    newer time, another production version and another model, labels superseded by later
    ones, labels before their score, labels of transactions never scored, time ties."""
    rng = random.Random(seed)
    scores: list[ScoreRecord] = []
    labels: list[LabelRecord] = []
    for i in range(n):
        tx = f"tx-{i:05d}"
        at = T0 + i * 37.0 + (0 if i % 50 else 0.0)
        prod = rng.random()
        entries = []
        if i % 3:
            roll = rng.random()
            if roll < 0.05:
                entries.append(shadow("v2", None, "timeout: no result within 50 ms"))
            elif roll < 0.08:
                entries.append(shadow("v2", None, "busy: queue full"))
            elif roll < 0.09:
                entries.append(shadow("v2", None, "weird failure"))
            else:
                entries.append(shadow("v2", rng.random()))
        if i % 5 == 0:
            entries.append(shadow("v3", rng.random()))
        version = "v0" if i % 97 == 0 else "v1"
        model = "other" if i % 89 == 0 else "fraud"
        scores.append(
            scored(tx, prod, *entries, at=at, production_version=version, model_name=model)
        )
        if i % 31 == 0:  # scored again later (a retry): the newer record wins
            again = shadow("v2", rng.random())
            scores.append(scored(tx, rng.random(), again, at=at + 5.0))
        if i % 4 == 0:
            labels.append(label(tx, rng.random() < 0.3, at=at + rng.uniform(1, 40) * DAY))
        if i % 23 == 0:
            labels.append(label(tx, rng.random() < 0.5, at=at + 60 * DAY))  # supersedes
        if i % 211 == 0:
            labels.append(label(tx, True, at=at - 10.0))  # before its score: refused
    labels += [label(f"never-{i}", True) for i in range(7)]
    return scores, labels


def archive_once(
    bootstrap: str, scores_topic: str, labels_topic: str, root: Path, group: str
) -> tuple[ArchiveProgress, ArchiveMetrics]:
    """One ``--once`` run of the archiver in this process, as ``shadowline archive`` wires it."""
    settings = ArchiveSettings(
        kafka_bootstrap=bootstrap,
        scores_topic=scores_topic,
        labels_topic=labels_topic,
        archive_group=group,
        archive_flush_records=700,
    )
    metrics = ArchiveMetrics(CollectorRegistry(), (scores_topic, labels_topic))
    consumer = group_consumer(settings)
    try:
        archiver = Archiver(
            root,
            consumer,
            {scores_topic: layout.SCORES, labels_topic: layout.LABELS},
            metrics=metrics,
            flush_records=settings.archive_flush_records,
        )
        return archiver.run(once=True, join_timeout_s=30), metrics
    finally:
        consumer.close()


def archived_ids(root: Path, kind: str) -> list[str]:
    """Every transaction id in the archive's ``kind`` files, read with pyarrow alone."""
    found = sorted((root / kind).glob("date=*/*.parquet"))
    if not found:
        return []
    return [
        str(tx) for tx in pq.read_table(found, columns=["transaction_id"]).column(0).to_pylist()
    ]


def production_saw(
    frame: pd.DataFrame, *, blocked_every: int = 0
) -> tuple[list[ScoreRecord], list[LabelRecord]]:
    """Score and label records of synthetic payments, as the scorer and the label feed would
    have written them: the model's inputs (velocity features included) as received, every
    fraud report as a label at its ``label_time``.  Every ``blocked_every``-th payment was
    blocked by production (0: none)."""
    rows = add_features(frame.sort_values("event_time", kind="stable").reset_index(drop=True))
    seconds = rows["event_time"].astype("int64").to_numpy() / 1e6
    unit = rows["event_time"].dt.unit
    seconds = seconds * {"s": 1e6, "ms": 1e3, "us": 1.0, "ns": 1e-3}[unit]
    inputs = rows.loc[:, list(MODEL_SCHEMA.names)].astype(object).where(rows.notna(), None)
    scores, labels = [], []
    for i, (tx, at, row) in enumerate(
        zip(rows["transaction_id"], seconds, inputs.to_dict("records"), strict=True)
    ):
        blocked = blocked_every and i % blocked_every == 0
        production = ProductionScore(
            version="v0",
            score=0.95 if blocked else 0.1,
            latency_ms=0.2,
            decision=Decision.BLOCK if blocked else Decision.ALLOW,
        )
        scores.append(
            ScoreRecord(
                transaction_id=str(tx),
                request_id=f"r-{tx}",
                scored_at=float(at),
                model_name="fraud",
                production=production,
                shadows=[],
                inputs={str(k): v for k, v in row.items()},
            )
        )
    reported = rows.loc[rows["is_fraud"] == 1]
    for tx, when in zip(reported["transaction_id"], reported["label_time"], strict=True):
        labels.append(label(str(tx), True, at=when.timestamp()))
    return scores, labels
