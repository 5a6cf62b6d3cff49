"""The topic archive on disk: day-partitioned Parquet that engines read without Shadowline.

Layout under the archive root (``SHADOWLINE_ARCHIVE_DIR``)::

    scores/date=2026-11-30/part-<topic>-p000-o000000001200-000000001999-n1.parquet
    labels/date=2026-12-14/part-<topic>-p002-o000000000040-000000000057-n2.parquet
    replay/version=v7/date=2026-11-30/<the archived file's name>
    scores/_dead_letter/part-<topic>-p000-o000000002000-000000002999-n2.jsonl

* ``date=YYYY-MM-DD`` is a Hive-style partition (the UTC day of ``scored_at`` for scores, of
  ``label_time`` for labels): DuckDB (``hive_partitioning``), Spark and Trino (Hive connector)
  read it as a ``date`` column and prune on it.  The column is not stored inside the files.
* A file holds the records of one archived batch of one Kafka partition that fall on that day.
  Its name carries the topic, the partition, the batch's first and last offset and ``n``, how
  many day files the batch was split into: a batch is complete when all ``n`` exist, which is
  how a restarted archiver tells what is archived (see :func:`archived_offsets`).
* Scores are flattened (one row per score record): production's answer in ``production_*``
  columns, the shadows as ``shadows``: a list of structs (version, score, decision, latency_ms,
  error), which DuckDB and Trino ``UNNEST`` and Spark ``explode``; every input as a top-level
  ``input_<name>`` column: numbers as DOUBLE, booleans as BOOLEAN, strings as VARCHAR (a field
  whose values mix kinds within one file is stored as VARCHAR holding each value's JSON text:
  ``"DE"`` with its quotes, ``3.0``, ``true``).  Numbers are always DOUBLE so that
  the same field has the same type in every file (Spark's schema merge refuses LONG vs DOUBLE).
* Every row keeps ``kafka_partition`` and ``kafka_offset``: exactly-once can be checked, and a
  row can be traced back to the topic.

Files are written under a temporary name, flushed to disk, then renamed into place
(:func:`write_atomic`): a reader never sees half a file.
"""

from __future__ import annotations

import io
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from registry.records import LabelRecord, ScoreRecord

SCORES, LABELS, REPLAY = "scores", "labels", "replay"
DEAD_LETTER = "_dead_letter"  # under scores/ and labels/; engines skip folders starting with _
INPUT_PREFIX = "input_"
TMP_SUFFIX = ".tmp"  # ".<name>.<pid>.tmp": hidden from engines, never matched by *.parquet
# Parquet key-value metadata: the input columns holding JSON text (their values mix kinds).
JSON_INPUTS = b"shadowline.json_inputs"
_PART = re.compile(r"^part-(?P<topic>.+)-p(?P<p>\d+)-o(?P<first>\d+)-(?P<last>\d+)-n(?P<n>\d+)\.")
_TIME = pa.timestamp("us", tz="UTC")
SHADOW_TYPE = pa.struct(
    [
        ("version", pa.string()),
        ("score", pa.float64()),
        ("decision", pa.string()),
        ("latency_ms", pa.float64()),
        ("error", pa.string()),
    ]
)
SCORE_COLUMNS = pa.schema(
    [
        ("transaction_id", pa.string()),
        ("request_id", pa.string()),
        ("model_name", pa.string()),
        ("scored_at", _TIME),
        ("schema_version", pa.int8()),
        ("production_version", pa.string()),
        ("production_score", pa.float64()),
        ("production_decision", pa.string()),
        ("production_latency_ms", pa.float64()),
        ("production_explored", pa.bool_()),
        ("production_exploration_share", pa.float64()),
        ("shadows", pa.list_(SHADOW_TYPE)),
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
    ]
)
LABEL_COLUMNS = pa.schema(
    [
        ("transaction_id", pa.string()),
        ("is_fraud", pa.bool_()),
        ("label_time", _TIME),
        ("source", pa.string()),
        ("schema_version", pa.int8()),
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
    ]
)


R = TypeVar("R", ScoreRecord, LabelRecord)


@dataclass(frozen=True)
class Located(Generic[R]):
    """A decoded record and where it was read: its Kafka partition and offset."""

    record: R
    partition: int
    offset: int


def day_of(seconds: float) -> date:
    """The UTC day of a unix time: the ``date=`` partition a record belongs to."""
    return datetime.fromtimestamp(seconds, UTC).date()


def day_dir(root: Path, kind: str, day: date) -> Path:
    return root / kind / f"date={day.isoformat()}"


def part_name(topic: str, partition: int, first: int, last: int, days: int, suffix: str) -> str:
    """The file name of one day of a batch (offsets ``first..last`` of ``partition``)."""
    return f"part-{topic}-p{partition:03d}-o{first:012d}-{last:012d}-n{days}.{suffix}"


def json_text(values: Iterable[Any]) -> pa.Array:
    """Values as the JSON text of each (``"DE"`` keeps its quotes, 3.0 is ``3.0``): how a
    field whose values mix kinds is stored, so that no kind is lost."""
    return pa.array([None if v is None else orjson.dumps(v).decode() for v in values], pa.string())


def _typed(values: list[Any]) -> pa.Array:
    """One input field as a typed column (see the module docstring for the rules)."""
    kinds = {type(v) for v in values if v is not None}
    if kinds == {bool}:
        return pa.array(values, pa.bool_())
    if kinds and kinds <= {int, float}:
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    if kinds <= {str}:
        return pa.array(values, pa.string())
    return json_text(values)


def score_table(rows: Sequence[Located[ScoreRecord]]) -> pa.Table:
    """Score records as the archive's flattened columns."""
    scores = [row.record for row in rows]
    keys = sorted({key for r in scores for key in r.inputs})
    columns: dict[str, pa.Array] = {
        "transaction_id": pa.array([r.transaction_id for r in scores], pa.string()),
        "request_id": pa.array([r.request_id for r in scores], pa.string()),
        "model_name": pa.array([r.model_name for r in scores], pa.string()),
        "scored_at": pa.array([round(r.scored_at * 1e6) for r in scores], pa.int64()).cast(_TIME),
        "schema_version": pa.array([r.schema_version for r in scores], pa.int8()),
        "production_version": pa.array([r.production.version for r in scores], pa.string()),
        "production_score": pa.array([r.production.score for r in scores], pa.float64()),
        "production_decision": pa.array([r.production.decision.value for r in scores], pa.string()),
        "production_latency_ms": pa.array([r.production.latency_ms for r in scores], pa.float64()),
        "production_explored": pa.array([r.production.explored for r in scores], pa.bool_()),
        "production_exploration_share": pa.array(
            [r.production.exploration_share for r in scores], pa.float64()
        ),
        "shadows": pa.array(
            [
                [
                    {
                        "version": s.version,
                        "score": s.score,
                        "decision": None if s.decision is None else s.decision.value,
                        "latency_ms": s.latency_ms,
                        "error": s.error,
                    }
                    for s in r.shadows
                ]
                for r in scores
            ],
            pa.list_(SHADOW_TYPE),
        ),
        "kafka_partition": pa.array([row.partition for row in rows], pa.int32()),
        "kafka_offset": pa.array([row.offset for row in rows], pa.int64()),
    }
    for key in keys:
        values = [r.inputs.get(key) for r in scores]
        if any(v is not None for v in values):
            columns[INPUT_PREFIX + key] = _typed(values)
    table = pa.table(columns)
    mixed = [INPUT_PREFIX + key for key in keys if _mixed([r.inputs.get(key) for r in scores])]
    return mark_json(table, mixed)


def _mixed(values: list[Any]) -> bool:
    kinds = {type(v) for v in values if v is not None}
    return not (kinds == {bool} or kinds <= {int, float} or kinds <= {str})


def json_columns(schema: pa.Schema) -> set[str]:
    """The input columns of a file that hold JSON text (see :func:`json_text`)."""
    raw = (schema.metadata or {}).get(JSON_INPUTS, b"")
    return {name for name in raw.decode().split(",") if name}


def mark_json(table: pa.Table, names: Iterable[str]) -> pa.Table:
    """``table`` with ``names`` added to the JSON-text columns its metadata lists."""
    marked = json_columns(table.schema) | set(names)
    if not marked:
        return table
    return table.replace_schema_metadata({JSON_INPUTS: ",".join(sorted(marked)).encode()})


def input_rows(table: pa.Table, names: Sequence[str]) -> list[dict[str, Any]]:
    """The rows' inputs ``names`` as the scorer received them (a column a file lacks is
    missing: None), for replaying them through a model."""
    decoded = json_columns(table.schema)
    columns: list[list[Any]] = []
    for name in names:
        column = INPUT_PREFIX + name
        if column not in table.column_names:
            columns.append([None] * table.num_rows)
            continue
        values = table[column].to_pylist()
        if column in decoded:
            values = [None if v is None else orjson.loads(v) for v in values]
        columns.append(values)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _field(struct: pa.ChunkedArray | pa.Array, name: str, kind: pa.DataType, n: int) -> pa.Array:
    """``struct.name`` cast to ``kind``, or nulls when no record of the chunk has the field."""
    struct = struct.combine_chunks() if isinstance(struct, pa.ChunkedArray) else struct
    if struct.type.num_fields and struct.type.get_field_index(name) >= 0:
        return pc.struct_field(struct, name).cast(kind)
    return pa.nulls(n, kind)


def score_table_json(
    values: Sequence[bytes], partitions: Sequence[int], offsets: Sequence[int], defaults: Any
) -> pa.Table:
    """The same columns as :func:`score_table`, parsed from the records' JSON by Arrow.

    For speed only (Arrow parses in C++): ``values`` must already have decoded as score
    records.  ``defaults`` is what a field absent from the record means (the ``production``
    defaults of :class:`~registry.records.ProductionScore`).  Raises ``pa.ArrowInvalid`` when a
    field's JSON kind changes within the chunk; :func:`score_table` handles those.
    """
    buffer = b"\n".join(values)
    options = pa_json.ReadOptions(block_size=len(buffer) + 1, use_threads=False)
    raw = pa_json.read_json(io.BytesIO(buffer), read_options=options)
    n = raw.num_rows
    production = raw["production"].combine_chunks()
    shadows = raw["shadows"].combine_chunks()
    inner = shadows.flatten()
    items = pa.StructArray.from_arrays(
        [_field(inner, f.name, f.type, len(inner)) for f in SHADOW_TYPE],
        fields=list(SHADOW_TYPE),
    )
    micros = pc.round(pc.multiply(raw["scored_at"].cast(pa.float64()), 1e6)).cast(pa.int64())
    columns: dict[str, Any] = {
        "transaction_id": raw["transaction_id"],
        "request_id": raw["request_id"].cast(pa.string()),
        "model_name": raw["model_name"],
        "scored_at": micros.cast(_TIME),
        "schema_version": raw["schema_version"].cast(pa.int8()),
        "production_version": _field(production, "version", pa.string(), n),
        "production_score": _field(production, "score", pa.float64(), n),
        "production_decision": _field(production, "decision", pa.string(), n),
        "production_latency_ms": _field(production, "latency_ms", pa.float64(), n),
        "production_explored": _field(production, "explored", pa.bool_(), n).fill_null(
            defaults.explored
        ),
        "production_exploration_share": _field(
            production, "exploration_share", pa.float64(), n
        ).fill_null(defaults.exploration_share),
        "shadows": pa.ListArray.from_arrays(shadows.offsets, items, type=pa.list_(SHADOW_TYPE)),
        "kafka_partition": pa.array(partitions, pa.int32()),
        "kafka_offset": pa.array(offsets, pa.int64()),
    }
    inputs = raw["inputs"].combine_chunks()
    for spec in sorted(inputs.type, key=lambda f: f.name):
        column = pc.struct_field(inputs, spec.name)
        if pa.types.is_null(spec.type):
            continue
        if pa.types.is_integer(spec.type) or pa.types.is_floating(spec.type):
            column = column.cast(pa.float64())
        elif not (pa.types.is_boolean(spec.type) or pa.types.is_string(spec.type)):
            raise pa.ArrowInvalid(f"input {spec.name} is {spec.type}, not a scalar")
        columns[INPUT_PREFIX + spec.name] = column
    return pa.table(columns)


def concat(tables: list[pa.Table]) -> pa.Table:
    """Chunks of one file as one table; a column typed differently across chunks (or JSON
    text in one of them) becomes JSON text in all (see :func:`json_text`)."""
    if len(tables) == 1:
        return tables[0]
    types: dict[str, set[pa.DataType]] = defaultdict(set)
    marked: set[str] = set()
    for table in tables:
        marked |= json_columns(table.schema)
        for name, kind in zip(table.column_names, table.schema.types, strict=True):
            types[name].add(kind)
    clash = {n for n, kinds in types.items() if len(kinds) > 1} | marked
    for name in clash:
        tables = [
            t.set_column(t.column_names.index(name), name, json_text(t[name].to_pylist()))
            if name in t.column_names and name not in json_columns(t.schema)
            else t
            for t in tables
        ]
    tables = [t.replace_schema_metadata(None) for t in tables]
    return mark_json(pa.concat_tables(tables, promote_options="default"), clash)


def label_table(rows: Sequence[Located[LabelRecord]]) -> pa.Table:
    """Label records as the archive's columns."""
    labels = [row.record for row in rows]
    return pa.table(
        {
            "transaction_id": pa.array([r.transaction_id for r in labels], pa.string()),
            "is_fraud": pa.array([r.is_fraud for r in labels], pa.bool_()),
            "label_time": pa.array(
                [round(r.label_time * 1e6) for r in labels],
                pa.int64(),
            ).cast(_TIME),
            "source": pa.array([r.source for r in labels], pa.string()),
            "schema_version": pa.array([r.schema_version for r in labels], pa.int8()),
            "kafka_partition": pa.array([row.partition for row in rows], pa.int32()),
            "kafka_offset": pa.array([row.offset for row in rows], pa.int64()),
        },
        schema=LABEL_COLUMNS,
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, write: Any) -> None:
    """Write ``path`` durably: ``write(tmp_path)`` fills a temporary file beside it, which is
    flushed to disk and renamed into place, and the folder entry is flushed too.  A crash
    leaves either the whole file or none (plus a hidden ``.tmp`` file, removed by
    :func:`clean_tmp`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    write(tmp)
    with tmp.open("rb+") as handle:
        os.fsync(handle.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


def write_parquet(path: Path, table: pa.Table) -> None:
    """``table`` as a zstd-compressed Parquet file at ``path``, atomically."""
    write_atomic(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def clean_tmp(root: Path) -> int:
    """Remove temporary files a crashed writer left under ``root``; returns how many."""
    removed = 0
    for tmp in root.rglob(f".*{TMP_SUFFIX}"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def days_of(since: datetime | None, until: datetime | None) -> tuple[date | None, date | None]:
    """The ``date=`` partitions that can hold times in ``[since, until)`` (first, last day)."""
    last = None if until is None else (until - timedelta(microseconds=1)).astimezone(UTC).date()
    return (None if since is None else since.astimezone(UTC).date()), last


def files(
    root: Path, kind: str, since: date | None = None, until: date | None = None
) -> list[Path]:
    """The Parquet files of ``kind`` whose day is within ``since..until`` (both inclusive)."""
    found: list[Path] = []
    base = root / kind
    if not base.is_dir():
        return found
    for folder in sorted(base.glob("date=*")):
        try:
            day = date.fromisoformat(folder.name.removeprefix("date="))
        except ValueError:
            continue  # not a partition of ours
        if (since is None or day >= since) and (until is None or day <= until):
            found += sorted(folder.glob("part-*.parquet"))
    return found


def archived_offsets(root: Path, kind: str, topic: str, *, repair: bool = False) -> dict[int, int]:
    """The last offset archived per partition of ``topic``, from the complete batches on disk.

    A batch's files are its day files plus its dead-letter file (when it refused records).
    A batch whose files are not all there (a crash between two renames, or a batch being
    written right now) is incomplete and does not count; with ``repair`` (the archiver, at
    assignment, when no one else writes these partitions) its files are deleted, and its
    records will be archived again from the topic.
    """
    batches: dict[tuple[int, int, int, int], list[Path]] = defaultdict(list)
    base = root / kind
    found = [*base.glob(f"date=*/part-{topic}-p*"), *base.glob(f"{DEAD_LETTER}/part-{topic}-p*")]
    for path in found:
        match = _PART.match(path.name)
        if match and match["topic"] == topic:
            key = (int(match["p"]), int(match["first"]), int(match["last"]), int(match["n"]))
            batches[key].append(path)
    done: dict[int, int] = {}
    for (partition, _first, last, days), paths in batches.items():
        if len(paths) < days:
            for path in paths if repair else ():
                path.unlink(missing_ok=True)
            continue
        done[partition] = max(done.get(partition, -1), last)
    return done


def split_by_day(rows: Iterable[Located[R]]) -> dict[date, list[Located[R]]]:
    """The rows of one batch grouped by their ``date=`` partition."""
    days: dict[date, list[Located[R]]] = defaultdict(list)
    for row in rows:
        record = row.record
        moment = record.scored_at if isinstance(record, ScoreRecord) else record.label_time
        days[day_of(moment)].append(row)
    return dict(days)
