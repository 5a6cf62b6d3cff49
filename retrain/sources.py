"""Where transactions come from: one Protocol, a synthetic source, a folder of files and the
topic archive (:mod:`retrain.archive_source`: what production saw).

A source returns raw rows with ``start <= event_time < end``, already checked against
:data:`retrain.schema.COLUMNS` (a bad file fails the run with a message naming file and
column).  ``identity`` describes what the source would read -- for files, their names,
sizes and modification times -- so ``ingest`` can tell that nothing changed.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

import pandas as pd

from retrain.errors import DataError
from retrain.schema import COLUMN_NAMES, check_frame
from retrain.synthetic import SyntheticSource

SUFFIXES = (".parquet", ".csv")


class DataSource(Protocol):
    """Anything that can hand the pipeline a window of transactions."""

    @property
    def description(self) -> str:
        """What the source is, for the run record (no secrets)."""
        ...

    def identity(self) -> str:
        """Changes whenever the data the source would return may have changed."""
        ...

    def load(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Checked rows with ``start <= event_time < end``.  Raises DataError."""
        ...


@runtime_checkable
class PartitionedSource(Protocol):
    """A source that can say which partitions (or files) its last load read: the run records
    them in its lineage (the ``ingest`` summary and the model's manifest)."""

    def parts(self) -> tuple[str, ...]: ...


class CheckedSynthetic:
    """:class:`SyntheticSource` behind the same checks as real data."""

    def __init__(self, seed: int, rows_per_week: int) -> None:
        self._source = SyntheticSource(seed=seed, rows_per_week=rows_per_week)

    @property
    def description(self) -> str:
        return self._source.description

    def identity(self) -> str:
        return self._source.description  # same seed and size: same rows

    def load(self, start: datetime, end: datetime) -> pd.DataFrame:
        return check_frame(self._source.load(start, end), "synthetic")


class FolderSource:
    """Every ``*.parquet`` and ``*.csv`` file in a folder (not recursive), in name order.

    Each file must hold the columns of :data:`retrain.schema.COLUMNS`; timestamps are ISO 8601
    (UTC when no offset is given).  Rows outside the window are dropped after checking.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def description(self) -> str:
        return f"folder({self.folder})"

    def _files(self) -> list[Path]:
        if not self.folder.is_dir():
            raise DataError(f"{self.folder}: data folder does not exist")
        files = sorted(p for p in self.folder.iterdir() if p.suffix in SUFFIXES and p.is_file())
        if not files:
            raise DataError(f"{self.folder}: no .parquet or .csv files")
        return files

    def identity(self) -> str:
        parts = []
        for path in self._files():
            stat = path.stat()
            parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
        return ";".join(parts)

    def load(self, start: datetime, end: datetime) -> pd.DataFrame:
        frames = []
        for path in self._files():
            frame = check_frame(_read(path), path.name)
            when = frame["event_time"]
            frames.append(frame.loc[(when >= start) & (when < end)])
        frame = pd.concat(frames, ignore_index=True)
        return frame.sort_values("event_time", kind="stable").reset_index(drop=True)


def _read(path: Path) -> pd.DataFrame:
    """One file as a DataFrame; an unreadable file is a DataError naming it."""
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        # Strings stay strings: ids like "007" must not become numbers.
        text_columns = {c: str for c in COLUMN_NAMES if c not in _NUMERIC_COLUMNS}
        return pd.read_csv(path, dtype=text_columns, keep_default_na=True)
    except (OSError, ValueError) as exc:
        kind = "Parquet" if path.suffix == ".parquet" else "CSV"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path.name}: cannot be read as {kind}: {first}") from exc


_NUMERIC_COLUMNS = {"amount", "card_age_days", "device_age_days", "is_fraud"}


def source_from_settings(
    data_source: str,
    seed: int,
    rows_per_week: int,
    *,
    archive_dir: str = ".shadowline/archive",
    model_name: str = "fraud",
) -> DataSource:
    """``"synthetic"``, ``"archive"`` (the topic archive at ``archive_dir``: what production
    scored for ``model_name``) or a folder path."""
    if data_source == "synthetic":
        return CheckedSynthetic(seed, rows_per_week)
    if data_source == "archive":
        from retrain.archive_source import ArchiveSource  # DuckDB only when it is used

        return ArchiveSource(Path(archive_dir), model_name)
    return FolderSource(Path(data_source))
