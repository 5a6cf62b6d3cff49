"""Training on what production saw: the archive as a data source, with the leakage rules."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from registry import ModelRegistry
from retrain.archive_source import ArchiveSource
from retrain.errors import DataError
from retrain.runner import Runner
from retrain.schema import COLUMN_NAMES
from retrain.settings import RetrainSettings
from retrain.sources import source_from_settings
from retrain.synthetic import EPOCH, SyntheticSource
from tests.retrain.evidence.archive_helpers import production_saw, write_archive
from tests.retrain.evidence.records import label
from tests.retrain.helpers import AS_OF

START, END = EPOCH, EPOCH + timedelta(weeks=1)


def _week(tmp_path: Path, blocked_every: int = 0) -> tuple[pd.DataFrame, ArchiveSource]:
    frame = SyntheticSource(seed=1, rows_per_week=600).load(START, END)
    scores, labels = production_saw(frame, blocked_every=blocked_every)
    write_archive(tmp_path, scores, labels)
    return frame, ArchiveSource(tmp_path, "fraud")


def test_rows_are_the_inputs_production_saw_with_the_labels_known_at_the_end(
    tmp_path: Path,
) -> None:
    frame, source = _week(tmp_path)
    cut = END - timedelta(days=3)
    loaded = source.load(START, cut)
    inside = frame.loc[frame["event_time"] < cut].drop_duplicates("transaction_id")
    assert sorted(loaded["transaction_id"]) == sorted(inside["transaction_id"])
    assert list(loaded.columns[: len(COLUMN_NAMES)]) == list(COLUMN_NAMES)
    assert {"hour", "txn_count_1h", "amount_sum_24h"} <= set(loaded.columns)
    known = inside.loc[(inside["is_fraud"] == 1) & (inside["label_time"] <= cut)]
    assert sorted(loaded.loc[loaded["is_fraud"] == 1, "transaction_id"]) == sorted(
        known["transaction_id"]
    )  # a chargeback arriving after the cut is not known yet
    labeled = frame.loc[(frame["is_fraud"] == 1) & (frame["label_time"] <= cut)]
    assert source.parts() == tuple(
        sorted(
            {f"scores/date={d:%Y-%m-%d}" for d in inside["event_time"]}
            | {f"labels/date={d:%Y-%m-%d}" for d in labeled["label_time"]}
        )
    )


def test_a_reversal_after_the_cut_is_not_known_and_unlabeled_blocks_are_left_out(
    tmp_path: Path,
) -> None:
    frame, source = _week(tmp_path, blocked_every=50)
    fraud = frame.loc[frame["is_fraud"] == 1].iloc[0]
    tx, reported = fraud["transaction_id"], fraud["label_time"]
    reversed_at = reported + timedelta(days=20)  # a review finds the payment legitimate
    write_archive(tmp_path, [], [label(tx, False, at=reversed_at.timestamp())], topic="later")
    before = source.load(START, reversed_at - timedelta(seconds=1)).set_index("transaction_id")
    after = source.load(START, reversed_at + timedelta(seconds=1)).set_index("transaction_id")
    assert before.loc[tx, "is_fraud"] == 1  # what was known then
    assert after.loc[tx, "is_fraud"] == 0
    # Every 50th payment was blocked: without a label its outcome was never observed.
    blocked = frame.sort_values("event_time", kind="stable")["transaction_id"].iloc[::50]
    labeled = set(frame.loc[frame["is_fraud"] == 1, "transaction_id"])
    unobserved = set(blocked) - labeled
    assert unobserved
    assert not unobserved & set(after.index)
    assert len(after) == frame["transaction_id"].nunique() - len(unobserved)


def test_an_archive_without_records_in_the_window_fails_naming_it(tmp_path: Path) -> None:
    source = source_from_settings("archive", 1, 600, archive_dir=str(tmp_path))
    with pytest.raises(DataError) as caught:
        source.load(START, END)
    assert str(caught.value) == (
        f"archive {tmp_path}: no score records from 2026-01-05 to 2026-01-12 "
        "(run 'shadowline archive', or choose another data source)"
    )


def test_a_retrain_run_from_the_archive_names_its_partitions_in_the_lineage(
    tmp_path: Path,
    make_settings: Callable[..., RetrainSettings],
    make_runner: Callable[..., Runner],
    model_registry: ModelRegistry,
) -> None:
    archive = tmp_path / "archive"
    frame = SyntheticSource(seed=7, rows_per_week=3000).load(AS_OF - timedelta(weeks=9), AS_OF)
    write_archive(archive, *production_saw(frame), batch=5000)
    runner = make_runner(make_settings(data_source="archive", archive_dir=str(archive)))
    result = runner.run()
    assert result.outcome in ("succeeded", "rejected"), result.reason
    lineage = model_registry.manifest("fraud", result.run_id).lineage
    assert lineage.data_source == f"archive({archive}, model=fraud)"
    ingest = json.loads((result.folder / "ingest" / "done.json").read_text())["summary"]
    assert list(lineage.data_partitions) == ingest["data_parts"]
    days = {p.parent.name for p in (archive / "scores").glob("date=*/*.parquet")}
    used = {part.removeprefix("scores/") for part in lineage.data_partitions if "scores/" in part}
    assert used
    assert used <= days
    # The run reads from a day before training starts (maturity, evaluation and training
    # weeks back from as-of) up to as-of: the archive's older days are not read.
    assert min(used) == f"date={(AS_OF - timedelta(days=14 + 6 * 7 + 1)):%Y-%m-%d}"
    assert min(days) < min(used)
    assert max(used) == f"date={(AS_OF - timedelta(days=1)):%Y-%m-%d}"
