"""Retro-shadow: score archived traffic with a registered candidate, off the serving path.

A candidate need not sit in live shadow for weeks before label-based evidence exists: the
archive holds every input production saw, and the labels of old traffic have matured.
:func:`replay` loads the candidate as the scorer does (artifact verified by the registry,
inputs checked and encoded by the shared :class:`~registry.contract.RowCodec`, the graph run by
onnxruntime, decisions at the manifest's thresholds), scores every archived score record of
the model in the time range in batches, and writes one file per archived file to
``<archive>/replay/version=<v>/date=<day>/`` with the archived columns and, as the only
shadow, the candidate's score.  ``pair_archive(..., replay=True)`` then pairs it with the
production answers recorded at the time; the evidence built from it says ``source="replay"``.

A transaction whose inputs do not fit the candidate's schema is not scored: its shadow entry
carries the error ``input: <field>: <problem>``, and the problems are counted by field.
Output files are named after the archived file they come from, so replaying the same range
again replaces them instead of adding duplicates.  ``latency_ms`` of a replayed score is the
batch's scoring time divided by its rows (a throughput figure, not a request latency).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from registry.contract import ColumnCodec, RowCodec, scores_from_output
from registry.lifecycle import ModelRegistry
from registry.manifest import FieldType, InputSchema, Manifest
from retrain.errors import ArchiveError
from retrain.evidence import layout

BATCH = 50_000
INPUT_ERROR = "input"  # the error kind of a transaction the candidate's schema refuses


def utc(moment: datetime | None) -> datetime | None:
    """``moment`` as an aware UTC time (a bare one means UTC)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass
class ReplayResult:
    """What a replay did: transactions read, scored and refused (by field), files written."""

    version: str
    output: Path
    read: int = 0
    scored: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # "field: problem" -> count
    files: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        refused = sum(self.refused.values())
        head = (
            f"replayed {self.read} archived transactions through {self.version} in "
            f"{self.seconds:.1f}s: {self.scored} scored, {refused} refused by its schema"
        )
        reasons = "; ".join(f"{count} {why}" for why, count in self.refused.most_common(5))
        return f"{head} ({reasons})" if reasons else head + f" -> {self.output}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "output": str(self.output),
            "read": self.read,
            "scored": self.scored,
            "refused": sum(self.refused.values()),
            "refused_by_problem": dict(self.refused),
            "files": self.files,
            "seconds": round(self.seconds, 3),
        }


class _Candidate:
    """The candidate as the scorer would load it: session, codec, output spec, thresholds."""

    def __init__(self, manifest: Manifest, artifact: bytes) -> None:
        import onnxruntime as ort

        self.manifest = manifest
        self.codec = RowCodec(manifest.input_schema)
        self.columns = ColumnCodec(self.codec)
        self.names = manifest.input_schema.names
        try:
            self.session = ort.InferenceSession(artifact, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises several unrelated types for a bad graph
            raise ArchiveError(f"{manifest.ref} cannot be loaded: {exc}") from exc

    def run(self, feeds: dict[str, Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
        raw = self.session.run([self.manifest.output.name], feeds)[0]
        return scores_from_output(self.manifest.output, np.asarray(raw))


def replay(
    registry: ModelRegistry,
    name: str,
    version: str,
    archive: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    batch: int = BATCH,
    on_progress: Callable[[str], None] = lambda line: None,
) -> ReplayResult:
    """Score the archived transactions of model ``name`` scored in ``[since, until)`` with
    ``name:version`` and write the results next to the archive (see the module docstring).

    Raises ``ModelNotFound`` (from the registry) for an unknown version and
    :class:`ArchiveError` when the archive holds no score records in the range.
    """
    candidate = _Candidate(registry.manifest(name, version), registry.artifact(name, version))
    days = layout.days_of(since, until)
    sources = layout.files(archive, layout.SCORES, *days)
    if not sources:
        span = f" from {since or 'the start'} to {until or 'the end'}"
        raise ArchiveError(f"the archive {archive} holds no score records{span}")
    output = archive / layout.REPLAY / f"version={version}"
    result = ReplayResult(version=version, output=output)
    started = time.monotonic()
    for path in sources:
        table = _window(pq.read_table(path), name, since, until)
        if table.num_rows == 0:
            continue
        scored = _score_file(candidate, table, batch, result)
        target = output / path.parent.name / path.name
        layout.write_parquet(target, scored)
        result.files += 1
        on_progress(f"{path.parent.name}/{path.name}: {table.num_rows} transactions")
    result.seconds = time.monotonic() - started
    return result


def _window(table: pa.Table, name: str, since: datetime | None, until: datetime | None) -> pa.Table:
    keep = pc.equal(table["model_name"], name)
    if since is not None:
        keep = pc.and_(
            keep, pc.greater_equal(table["scored_at"], pa.scalar(since, table["scored_at"].type))
        )
    if until is not None:
        keep = pc.and_(keep, pc.less(table["scored_at"], pa.scalar(until, table["scored_at"].type)))
    return table.filter(keep)


def _fields(table: pa.Table, schema: InputSchema) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The candidate's fields as numpy columns for :class:`ColumnCodec`, or None when a
    column is not of its field's kind (then every row is checked one by one)."""
    numbers: dict[str, Any] = {}
    strings: dict[str, Any] = {}
    text = layout.json_columns(table.schema)
    for spec in schema.fields:
        column = layout.INPUT_PREFIX + spec.name
        if column not in table.column_names:
            continue  # missing in every row of this file
        kind = table.schema.field(column).type
        expected = (
            pa.types.is_boolean
            if spec.type is FieldType.BOOL
            else pa.types.is_floating
            if spec.is_numeric
            else pa.types.is_string
        )
        if column in text or not expected(kind):
            return None
        if spec.is_numeric:
            values = table[column].cast(pa.float64()).fill_null(np.nan)
            numbers[spec.name] = values.to_numpy()
        else:
            strings[spec.name] = table[column].to_numpy(zero_copy_only=False)
    return numbers, strings


def _score_file(
    candidate: _Candidate, table: pa.Table, batch: int, result: ReplayResult
) -> pa.Table:
    """``table`` with its shadows replaced by the candidate's entry for each row.

    Rows that :class:`ColumnCodec` vouches for are encoded a column at a time; the others
    are checked (and, when valid, encoded) row by row with :class:`RowCodec`, which names the
    problem of each refused one.
    """
    n = table.num_rows
    result.read += n
    scores = np.full(n, np.nan)
    errors: list[str | None] = [None] * n
    latency = np.full(n, np.nan)
    fields = _fields(table, candidate.manifest.input_schema)
    screened = candidate.columns.screen(*fields, n) if fields else np.zeros(n, dtype=bool)
    all_numbers, all_strings = fields or ({}, {})
    chosen = np.flatnonzero(screened)
    for start in range(0, len(chosen), batch):
        rows = chosen[start : start + batch]
        numbers = {k: v[rows] for k, v in all_numbers.items()}
        strings = {k: v[rows] for k, v in all_strings.items()}
        began = time.perf_counter()
        scores[rows] = candidate.run(candidate.columns.encode(numbers, strings, len(rows)))
        latency[rows] = (time.perf_counter() - began) * 1000 / len(rows)
    rest = np.flatnonzero(~screened)
    for start in range(0, len(rest), batch):
        rows = rest[start : start + batch]
        inputs = layout.input_rows(table.take(rows), candidate.names)
        good = []
        for index, row in zip(rows, inputs, strict=True):
            problems = candidate.codec.check(row)
            if problems:
                result.refused[str(problems[0])] += 1
                errors[index] = f"{INPUT_ERROR}: {problems[0]}"
            else:
                good.append((index, row))
        if good:
            began = time.perf_counter()
            where = np.array([index for index, _ in good])
            scores[where] = candidate.run(candidate.codec.encode([row for _, row in good]))
            latency[where] = (time.perf_counter() - began) * 1000 / len(good)
    result.scored += n - sum(error is not None for error in errors)
    decide = candidate.manifest.thresholds.decide
    decisions = [
        None if e is not None else decide(float(x)).value
        for x, e in zip(scores, errors, strict=True)
    ]
    items = pa.StructArray.from_arrays(
        [
            pa.array([candidate.manifest.version] * n, pa.string()),
            pa.array(scores, pa.float64(), mask=np.isnan(scores)),
            pa.array(decisions, pa.string()),
            pa.array(latency, pa.float64(), mask=np.isnan(latency)),
            pa.array(errors, pa.string()),
        ],
        fields=list(layout.SHADOW_TYPE),
    )
    offsets = pa.array(np.arange(n + 1, dtype=np.int32))
    shadows = pa.ListArray.from_arrays(offsets, items, type=pa.list_(layout.SHADOW_TYPE))
    return table.set_column(table.column_names.index("shadows"), "shadows", shadows)
