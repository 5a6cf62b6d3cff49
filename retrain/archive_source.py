"""The feedback data source: train on what production saw (``SHADOWLINE_DATA_SOURCE=archive``).

Rows come from the topic archive (:mod:`retrain.evidence.layout`): each transaction production
scored in the window, with its inputs exactly as the scorer received them, joined with the
label known at the end of the window.  The pipeline's leakage rules then apply unchanged:

* ``load(start, end)`` reads score records with ``start <= scored_at < end`` (``end`` is the
  run's as-of time) and, per transaction, the newest record;
* a label counts only if it arrived by ``end`` (``label_time <= end``, the ``filter`` step's
  rule): of the labels known then, the latest wins (a chargeback reversed by a review).  A
  transaction without one is legitimate, as in any export; the ``filter`` step still leaves
  out payments younger than the label maturity;
* a payment production blocked (and did not explore) has no outcome: it was declined, so no
  chargeback could come.  Training on it as legitimate would teach the model that what
  production blocks is fine; such rows are left out unless a label arrived (manual review).

The velocity features the scorer received (``hour``, ``txn_count_1h``, ...) are recorded
inputs: the ``features`` step keeps them instead of recomputing them (the archive has no card
history).  ``card_id`` and ``merchant_id`` come from the inputs when the scorer received them.
``parts()`` names the ``date=`` partitions the last load read: the run's lineage.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from retrain.errors import DataError
from retrain.evidence import layout
from retrain.schema import COLUMN_NAMES, NUMERIC_FEATURES, check_frame

RECORDED = tuple(name for name in NUMERIC_FEATURES if name not in COLUMN_NAMES)
_IDS = ("card_id", "merchant_id")  # not model inputs: a placeholder when not recorded
_QUERY = """
WITH s AS (
    SELECT * FROM read_parquet($scores, union_by_name = true)
    WHERE model_name = $model AND scored_at >= $start AND scored_at < $end
    QUALIFY row_number() OVER (
        PARTITION BY transaction_id ORDER BY scored_at DESC, kafka_partition DESC,
        kafka_offset DESC) = 1
), l AS (
    SELECT transaction_id, is_fraud, label_time FROM ({labels})
    WHERE label_time <= $end
    QUALIFY row_number() OVER (
        PARTITION BY transaction_id ORDER BY label_time DESC, kafka_partition DESC,
        kafka_offset DESC) = 1
)
SELECT s.*, l.is_fraud AS label_is_fraud, l.label_time AS label_at
FROM s LEFT JOIN l USING (transaction_id)
WHERE NOT (s.production_decision = 'block' AND NOT s.production_explored
           AND l.transaction_id IS NULL)
"""
_NO_LABELS = (
    "SELECT NULL::VARCHAR AS transaction_id, NULL::BOOLEAN AS is_fraud, "
    "NULL::TIMESTAMPTZ AS label_time, 0 AS kafka_partition, 0 AS kafka_offset WHERE false"
)


class ArchiveSource:
    """Score records of model ``model_name`` in the archive at ``root``, as training rows."""

    def __init__(self, root: Path, model_name: str) -> None:
        self.root = root
        self.model_name = model_name
        self._parts: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        return f"archive({self.root}, model={self.model_name})"

    def identity(self) -> str:
        found = layout.files(self.root, layout.SCORES) + layout.files(self.root, layout.LABELS)
        return ";".join(
            f"{p.relative_to(self.root)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in found
        )

    def parts(self) -> tuple[str, ...]:
        """The ``<kind>/date=...`` partitions the last :meth:`load` read."""
        return self._parts

    def load(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Checked rows with ``start <= event_time < end`` (see the module docstring)."""
        first, last = layout.days_of(start, end)
        scores = layout.files(self.root, layout.SCORES, first, last)
        # Labels are partitioned by their own time: none before the window, none after `end`.
        labels = layout.files(self.root, layout.LABELS, first, end.astimezone(UTC).date())
        if not scores:
            raise DataError(
                f"archive {self.root}: no score records from {start:%Y-%m-%d} to {end:%Y-%m-%d} "
                "(run 'shadowline archive', or choose another data source)"
            )
        self._parts = tuple(sorted({str(p.parent.relative_to(self.root)) for p in scores + labels}))
        labels_sql = "SELECT * FROM read_parquet($labels)" if labels else _NO_LABELS
        params: dict[str, object] = {
            "scores": [str(p) for p in scores],
            "model": self.model_name,
            "start": start,
            "end": end,
        }
        if labels:
            params["labels"] = [str(p) for p in labels]
        con = duckdb.connect(config={"memory_limit": "1GB", "threads": 2})
        try:
            frame = con.sql(_QUERY.format(labels=labels_sql), params=params).df()
        except duckdb.Error as exc:
            raise DataError(f"archive {self.root}: cannot be read: {exc}") from exc
        finally:
            con.close()
        return check_frame(_rows(frame), "archive", extra=RECORDED)


def _rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The archive's columns as the transaction data schema (:data:`COLUMN_NAMES`)."""
    out = pd.DataFrame({"transaction_id": frame["transaction_id"]})
    for name in COLUMN_NAMES:
        column = layout.INPUT_PREFIX + name
        if column in frame.columns:
            out[name] = frame[column]
        elif name in _IDS:
            out[name] = "unknown"
    out["event_time"] = frame["scored_at"]
    out["is_fraud"] = frame["label_is_fraud"].fillna(False).astype("int8")
    out["label_time"] = frame["label_at"]
    for name in RECORDED:
        column = layout.INPUT_PREFIX + name
        if column in frame.columns:
            out[name] = frame[column]
    return out
