"""Files in a folder: the documented schema is checked, and each problem names file and column."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from retrain.errors import DataError
from retrain.schema import check_frame
from retrain.sources import FolderSource, source_from_settings
from retrain.synthetic import EPOCH, SyntheticSource

START, END = EPOCH, EPOCH + timedelta(weeks=1)


def _rows() -> pd.DataFrame:
    return SyntheticSource(seed=1, rows_per_week=600).load(START, END)


def test_csv_and_parquet_files_load_as_one_checked_frame(tmp_path: Path) -> None:
    frame = _rows()
    half = len(frame) // 2
    frame.iloc[:half].to_parquet(tmp_path / "a.parquet", index=False)
    frame.iloc[half:].to_csv(tmp_path / "b.csv", index=False)
    (tmp_path / "notes.txt").write_text("ignored")
    source = FolderSource(tmp_path)
    loaded = source.load(START, END)
    assert len(loaded) == len(frame)
    assert loaded["transaction_id"].tolist() == frame["transaction_id"].tolist()
    assert loaded["label_time"].notna().sum() == frame["label_time"].notna().sum()
    assert source.identity().startswith("a.parquet:")
    assert source_from_settings(str(tmp_path), 1, 600).description == f"folder({tmp_path})"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["amount"]), "x.csv: column 'amount' is missing"),
        (lambda f: f.assign(amount="lots"), "x.csv: column 'amount' must hold numbers (got str)"),
        (
            lambda f: f.assign(card_age_days=1.5),
            "x.csv: column 'card_age_days' must hold whole numbers (got float64)",
        ),
        (lambda f: f.assign(is_fraud=2), "x.csv: column 'is_fraud' must hold 0 or 1 (got int64)"),
        (
            lambda f: f.assign(event_time="yesterday"),
            "x.csv: column 'event_time' must hold ISO 8601 timestamps (got str)",
        ),
        (lambda f: f.assign(currency=None), "x.csv: column 'currency' is empty in row 0"),
    ],
)
def test_each_schema_problem_names_the_file_and_column(
    tmp_path: Path, change: object, message: str
) -> None:
    frame = change(_rows())  # type: ignore[operator]
    frame.to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(DataError) as caught:
        FolderSource(tmp_path).load(START, END)
    assert str(caught.value) == message


def test_unreadable_and_missing_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        FolderSource(tmp_path / "nope").load(START, END)
    assert str(caught.value) == f"{tmp_path / 'nope'}: data folder does not exist"
    with pytest.raises(DataError) as caught:
        FolderSource(tmp_path).load(START, END)
    assert str(caught.value) == f"{tmp_path}: no .parquet or .csv files"
    (tmp_path / "bad.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError) as caught:
        FolderSource(tmp_path).load(START, END)
    assert str(caught.value).startswith("bad.csv: cannot be read as CSV: ")


def test_extra_columns_are_dropped_and_types_normalised() -> None:
    frame = _rows().assign(extra=1, is_fraud=lambda f: f["is_fraud"].astype(bool))
    checked = check_frame(frame, "f")
    assert "extra" not in checked.columns
    assert str(checked["is_fraud"].dtype) == "int8"
