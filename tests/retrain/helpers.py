"""Helpers and sizes shared by the retrain tests (and by tests elsewhere that run the
pipeline small, e.g. the documentation's examples)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from retrain.synthetic import EPOCH

AS_OF = EPOCH + timedelta(weeks=12)  # 2026-03-30: weeks 4-9 are mature at 14 days
# A whole pipeline run takes a few seconds on a busy 2-core machine with these: 3,000 payments
# a week, 4 training weeks, 2 evaluation weeks, 30 trees.
SMALL: dict[str, Any] = {
    "as_of": AS_OF,
    "synthetic_rows_per_week": 3000,
    "train_weeks": 4,
    "eval_weeks": 2,
    "label_maturity_days": 14,
    "n_trees": 30,
    "num_leaves": 15,
    "learning_rate": 0.1,
    "gate_min_slice_rows": 300,
    "gate_min_slice_frauds": 10,
}


class SimulatedClock:
    """One simulated time for every part of a test: the worker reads it as unix seconds
    (``clock()``), the registry as an aware datetime (``clock.utc``)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)
