"""The archive's reader: :class:`Paired` and :class:`Sampling` from Parquet with DuckDB.

:func:`pair_archive` builds exactly what :func:`retrain.evidence.frame.pair_records` builds
from the same records (a test holds the two to it), so the analysis does not care where its
columns came from; it scales to months of traffic because DuckDB (embedded, no server) scans
only the columns and the days it needs, in bounded memory.

The archive may lag the topics: the records not archived yet (the *tail*,
:func:`read_tail`) are passed in decoded and merged with the archived ones before anything
is counted: the newest record per transaction wins, wherever it was read, and labels are
joined across both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from registry.records import LabelRecord, ScoreRecord, decode_label, decode_score
from retrain.errors import ArchiveError
from retrain.evidence import layout
from retrain.evidence.frame import (
    DECISION_CODE,
    NO_LABEL,
    Paired,
    Sampling,
    error_kind,
)
from retrain.evidence.topics import BadRecord, read_topic

MEMORY_LIMIT = "700MB"  # DuckDB spills to disk beyond it; the bench holds the process < 1 GB


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "threads": 2})
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    return con


# Every SQL text below is built from this module's constants only; values are parameters.
_SCORE_COLUMNS = (
    "transaction_id, model_name, epoch_us(scored_at) AS at_us, production_version, "
    "production_score, production_decision, production_explored, production_exploration_share, "
    "production_latency_ms, {amount} AS amount, {rank} AS src, kafka_partition, kafka_offset, "
    # The first entry of the challenger in a record, as pair_records takes it (NULL: none).
    "list_filter(shadows, lambda x: x.version = $v)[1] AS sh"
)
_WINDOW = " WHERE epoch_us(scored_at) >= $since AND epoch_us(scored_at) < $until"
_LABEL_COLUMNS = (
    "transaction_id, is_fraud, epoch_us(label_time) AS label_us, {rank} AS src, "
    "kafka_partition, kafka_offset"
)
_FILES = "read_parquet($files, union_by_name = true)"
_NEWEST = "ORDER BY at_us DESC, src DESC, kafka_partition DESC, kafka_offset DESC"
_LATEST = "ORDER BY label_us DESC, src DESC, kafka_partition DESC, kafka_offset DESC"
_MINE = "($model IS NULL OR model_name = $model)"


def _amount(
    con: duckdb.DuckDBPyConnection, relation: str, params: dict[str, Any], field: str | None
) -> str:
    """The SQL of the amount column of ``relation`` (NULL when missing or not a number)."""
    if field is None:
        return "NULL::DOUBLE"
    column = layout.INPUT_PREFIX + field
    described = con.execute("DESCRIBE SELECT * FROM " + relation, params).fetchall()
    kind = {str(row[0]): str(row[1]) for row in described}.get(column)
    if kind is None or kind == "BOOLEAN":
        return "NULL::DOUBLE"
    return "TRY_CAST(" + '"' + column.replace('"', '""') + '"' + " AS DOUBLE)"


def _sources(
    con: duckdb.DuckDBPyConnection, files: list[str], tail: pa.Table | None, name: str
) -> list[tuple[str, dict[str, Any], int]]:
    """(relation, its parameters, rank): the archived files first, then the tail (rank 1:
    on a tie in time, the tail's record is the later one)."""
    found: list[tuple[str, dict[str, Any], int]] = []
    if files:
        found.append((_FILES, {"files": files}, 0))
    if tail is not None:
        con.register(name, tail)
        found.append((name, {}, 1))
    return found


def _load(
    con: duckdb.DuckDBPyConnection,
    files: tuple[list[str], list[str]],
    tails: tuple[pa.Table | None, pa.Table | None],
    amount_field: str | None,
    window: dict[str, Any],
) -> bool:
    """Tables ``s`` (score records in the window) and ``l`` (labels) over the archived files
    and the tail; False when there is no score record to read at all."""
    con.execute(
        "CREATE TEMP TABLE l (transaction_id VARCHAR, is_fraud BOOLEAN, label_us BIGINT, "
        "src INTEGER, kafka_partition INTEGER, kafka_offset BIGINT)"
    )
    for relation, params, rank in _sources(con, files[1], tails[1], "tail_labels"):
        columns = _LABEL_COLUMNS.format(rank=rank)
        con.execute("INSERT INTO l SELECT " + columns + " FROM " + relation, params)
    created = False
    for relation, params, rank in _sources(con, files[0], tails[0], "tail_scores"):
        amount = _amount(con, relation, params, amount_field)
        select = "SELECT " + _SCORE_COLUMNS.format(rank=rank, amount=amount) + " FROM " + relation
        verb = "INSERT INTO s " if created else "CREATE TEMP TABLE s AS "
        con.execute(verb + select + _WINDOW, {**params, **window})
        created = True
    return created


def _tables(
    scores: Iterable[ScoreRecord], labels: Iterable[LabelRecord]
) -> tuple[pa.Table | None, pa.Table | None]:
    score_rows = [layout.Located(record=r, partition=-1, offset=i) for i, r in enumerate(scores)]
    label_rows = [layout.Located(record=r, partition=-1, offset=i) for i, r in enumerate(labels)]
    return (
        layout.score_table(score_rows) if score_rows else None,
        layout.label_table(label_rows) if label_rows else None,
    )


def pair_archive(
    archive: Path,
    version: str,
    *,
    production_version: str | None = None,
    model_name: str | None = None,
    amount_field: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    tail_scores: Iterable[ScoreRecord] = (),
    tail_labels: Iterable[LabelRecord] = (),
    replay: bool = False,
) -> tuple[Paired, Sampling, str | None]:
    """Pair challenger ``version`` with production over the archive (and its tail).

    Same contract as :func:`~retrain.evidence.frame.pair_records`; ``since``/``until`` (aware
    datetimes, ``since <= scored_at < until``) bound the score records read, labels are read
    whole.  With ``replay`` the challenger's scores come from ``shadowline replay``'s output
    for ``version`` (``replay/version=<v>/``) instead of live shadow records.
    """
    kind = f"{layout.REPLAY}/version={version}" if replay else layout.SCORES
    days = layout.days_of(since, until)
    files = (
        [str(path) for path in layout.files(archive, kind, *days)],
        [str(path) for path in layout.files(archive, layout.LABELS)],
    )
    window = {
        "since": -(2**62) if since is None else round(since.timestamp() * 1e6),
        "until": 2**62 if until is None else round(until.timestamp() * 1e6),
        "v": version,
    }
    con = _connect()
    try:
        if not _load(con, files, _tables(tail_scores, tail_labels), amount_field, window):
            return _empty(), Sampling(), production_version
        return _pair(con, version, production_version, model_name)
    finally:
        con.close()


def _pair(
    con: duckdb.DuckDBPyConnection,
    version: str,
    production_version: str | None,
    model_name: str | None,
) -> tuple[Paired, Sampling, str | None]:
    sampling = Sampling()
    model = {"model": model_name}
    read, other, entries = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE NOT " + _MINE + "), "
        "count(*) FILTER (WHERE sh IS NOT NULL AND " + _MINE + ") FROM s",
        model,
    ).fetchone() or (0, 0, 0)
    sampling.scores_read, sampling.other_model = int(read), int(other)
    con.execute(
        "CREATE TEMP TABLE n AS SELECT *, (sh.error IS NOT NULL OR sh.score IS NULL OR "
        "sh.decision IS NULL) AS failed FROM s WHERE sh IS NOT NULL AND " + _MINE + " "
        "QUALIFY row_number() OVER (PARTITION BY transaction_id " + _NEWEST + ") = 1",
        model,
    )
    sampling.sampled = _one(con, "SELECT count(*) FROM n")
    sampling.duplicates = int(entries) - sampling.sampled
    for error, count in con.execute(
        "SELECT coalesce(sh.error, 'error: no score'), count(*) FROM n WHERE failed GROUP BY 1"
    ).fetchall():
        sampling.errors[error_kind(str(error))] += int(count)
    if production_version is None:
        found = con.execute(
            "SELECT production_version FROM n WHERE NOT failed " + _NEWEST + " LIMIT 1"
        ).fetchone()
        production_version = None if found is None else str(found[0])
    scored = _one(con, "SELECT count(*) FROM n WHERE NOT failed")
    _labels(con, sampling, model)
    rows = con.sql(
        "SELECT n.transaction_id, n.at_us, n.production_score, "
        + _code("n.production_decision")
        + " AS production_decision, "
        "n.production_explored, n.production_exploration_share, n.sh.score AS c_score, "
        + _code("n.sh.decision")
        + " AS c_decision, n.amount, n.production_latency_ms, "
        "n.sh.latency_ms AS c_latency, "
        "CASE WHEN k.refused THEN NULL ELSE k.is_fraud END AS is_fraud, "
        "CASE WHEN k.refused THEN NULL ELSE k.label_us END AS label_us "
        "FROM n LEFT JOIN k USING (transaction_id) "
        "WHERE NOT n.failed AND n.production_version IS NOT DISTINCT FROM $p "
        "ORDER BY n.transaction_id",
        params={"p": production_version},
    ).to_arrow_table()
    if rows is None:  # pragma: no cover - a SELECT always has a result
        raise ArchiveError("DuckDB returned no result for the paired rows")
    sampling.other_production = scored - rows.num_rows
    return _columns(rows), sampling, production_version


def _code(column: str) -> str:
    """A decision name as its code (:data:`DECISION_CODE`; -1 for none)."""
    cases = " ".join(f"WHEN '{name}' THEN {code}" for name, code in DECISION_CODE.items())
    return f"(CASE {column} {cases} ELSE -1 END)::TINYINT"


def _labels(con: duckdb.DuckDBPyConnection, sampling: Sampling, model: dict[str, Any]) -> None:
    """Latest label per transaction (``k``), with the scored time it is checked against."""
    sampling.labels_read = _one(con, "SELECT count(*) FROM l")
    con.execute(
        "CREATE TEMP TABLE latest AS SELECT transaction_id, is_fraud, label_us FROM l "
        "QUALIFY row_number() OVER (PARTITION BY transaction_id " + _LATEST + ") = 1"
    )
    sampling.labels_superseded = sampling.labels_read - _one(con, "SELECT count(*) FROM latest")
    con.execute(
        "CREATE TEMP TABLE k AS SELECT latest.*, t.max_at, "
        "(t.max_at IS NOT NULL AND latest.label_us < t.max_at) AS refused FROM latest "
        "LEFT JOIN (SELECT transaction_id, max(at_us) AS max_at FROM s WHERE " + _MINE + " "
        "AND transaction_id IN (SELECT transaction_id FROM latest) GROUP BY 1) t "
        "USING (transaction_id)",
        model,
    )
    sampling.labels_without_score = _one(con, "SELECT count(*) FROM k WHERE max_at IS NULL")
    sampling.labels_before_score = [
        str(tx)
        for (tx,) in con.execute(
            "SELECT transaction_id FROM k WHERE refused ORDER BY transaction_id"
        ).fetchall()
    ]
    sampling.fraud_delays = [
        (float(at) / 1e6, float(when) / 1e6)
        for at, when in con.execute(
            "SELECT max_at, label_us FROM k WHERE is_fraud AND NOT refused AND max_at IS NOT NULL"
        ).fetchall()
    ]


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> int:
    found = con.execute(sql, params or {}).fetchone()
    return 0 if found is None else int(found[0])


def _codes(column: pa.ChunkedArray) -> np.ndarray[Any, np.dtype[np.int8]]:
    return np.asarray(column.to_numpy(), dtype=np.int8)


def _floats(column: pa.ChunkedArray) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.asarray(column.cast(pa.float64()).fill_null(np.nan).to_numpy(), dtype=np.float64)


def _columns(rows: pa.Table) -> Paired:
    label = rows["is_fraud"].cast(pa.int8()).fill_null(NO_LABEL).to_numpy()
    return Paired(
        transaction_id=tuple(rows["transaction_id"].to_pylist()),
        scored_at=_floats(rows["at_us"]) / 1e6,
        production_score=_floats(rows["production_score"]),
        production_decision=_codes(rows["production_decision"]),
        explored=np.asarray(rows["production_explored"].to_numpy(zero_copy_only=False), bool),
        exploration_share=_floats(rows["production_exploration_share"]),
        challenger_score=_floats(rows["c_score"]),
        challenger_decision=_codes(rows["c_decision"]),
        amount=_floats(rows["amount"]),
        production_latency_ms=_floats(rows["production_latency_ms"]),
        challenger_latency_ms=_floats(rows["c_latency"]),
        label=np.asarray(label, dtype=np.int8),
        label_time=_floats(rows["label_us"]) / 1e6,
    )


def _empty() -> Paired:
    return _columns(
        pa.table(
            {
                name: pa.array([], kind)
                for name, kind in (
                    ("transaction_id", pa.string()),
                    ("at_us", pa.int64()),
                    ("production_score", pa.float64()),
                    ("production_decision", pa.int8()),
                    ("production_explored", pa.bool_()),
                    ("production_exploration_share", pa.float64()),
                    ("c_score", pa.float64()),
                    ("c_decision", pa.int8()),
                    ("amount", pa.float64()),
                    ("production_latency_ms", pa.float64()),
                    ("c_latency", pa.float64()),
                    ("is_fraud", pa.bool_()),
                    ("label_us", pa.int64()),
                )
            }
        )
    )


def read_tail(
    servers: Sequence[str],
    archive: Path,
    scores_topic: str,
    labels_topic: str,
    *,
    timeout_s: float = 30.0,
    on_bad: Callable[[BadRecord], None] | None = None,
    options: Mapping[str, Any] | None = None,
) -> tuple[list[ScoreRecord], list[LabelRecord]]:
    """The records of both topics that are not archived yet (after each partition's last
    archived offset), decoded; undecodable ones go to ``on_bad`` (as in ``read_topic``).
    ``options`` are the Kafka security settings (``registry.connections.kafka_options``)."""
    extra: dict[str, Any] = {"options": options}
    if on_bad is not None:
        extra["on_bad"] = on_bad
    out: list[list[Any]] = []
    for kind, topic, decode in (
        (layout.SCORES, scores_topic, decode_score),
        (layout.LABELS, labels_topic, decode_label),
    ):
        start = {p: last + 1 for p, last in layout.archived_offsets(archive, kind, topic).items()}
        out.append(
            list(read_topic(servers, topic, decode, timeout_s=timeout_s, start=start, **extra))
        )
    return out[0], out[1]


__all__ = ["BadRecord", "pair_archive", "read_tail"]
