"""The ``sets`` step: a time-ordered train/evaluation split and the business slices.

The evaluation weeks always come after the training weeks (a model is judged on the future
it will face, never on shuffled rows of its own past).  Slices are the groups the fraud team
reasons in: issuing country, amount band, merchant category.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd

from retrain.errors import DataError

AMOUNT_BANDS: tuple[tuple[str, float, float], ...] = (
    ("<20", 0.0, 20.0),
    ("20-100", 20.0, 100.0),
    ("100-500", 100.0, 500.0),
    (">=500", 500.0, float("inf")),
)
SLICE_COLUMNS = {"country": "card_country", "category": "merchant_category"}


@dataclass(frozen=True)
class Window:
    """The time windows of one run (UTC, start inclusive, end exclusive)."""

    data_start: datetime  # loaded from here: one day of history before training starts
    train_start: datetime
    train_end: datetime  # == evaluation start
    eval_end: datetime  # == as_of - label maturity

    @classmethod
    def for_run(
        cls, as_of: datetime, train_weeks: int, eval_weeks: int, maturity_days: int
    ) -> Window:
        eval_end = as_of - timedelta(days=maturity_days)
        train_end = eval_end - timedelta(weeks=eval_weeks)
        train_start = train_end - timedelta(weeks=train_weeks)
        return cls(
            data_start=train_start - timedelta(days=1),
            train_start=train_start,
            train_end=train_end,
            eval_end=eval_end,
        )


def split(frame: pd.DataFrame, window: Window) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Labelled rows of the training window and of the evaluation window, in time order.

    Raises :class:`DataError` when either set is empty or holds no fraud (nothing to learn
    from, or nothing to measure).
    """
    labelled = frame.loc[frame["labelled"]]
    when = labelled["event_time"]
    train = labelled.loc[(when >= window.train_start) & (when < window.train_end)]
    evaluation = labelled.loc[(when >= window.train_end) & (when < window.eval_end)]
    for name, part, start, end in (
        ("training", train, window.train_start, window.train_end),
        ("evaluation", evaluation, window.train_end, window.eval_end),
    ):
        span = f"{start:%Y-%m-%d} to {end:%Y-%m-%d}"
        if part.empty:
            raise DataError(f"the {name} set is empty: no labelled rows from {span}")
        if part["label"].sum() == 0:
            raise DataError(f"the {name} set has no fraud: {len(part)} rows from {span}")
    return train.reset_index(drop=True), evaluation.reset_index(drop=True)


def amount_band(amount: pd.Series) -> npt.NDArray[np.str_]:
    """The amount band name of each amount."""
    values = amount.to_numpy(dtype=np.float64)
    bands = np.full(len(values), AMOUNT_BANDS[-1][0], dtype=object)
    for name, low, high in AMOUNT_BANDS:
        bands[(values >= low) & (values < high)] = name
    return bands.astype(str)


def slices(frame: pd.DataFrame) -> dict[str, npt.NDArray[np.bool_]]:
    """Slice name (``country=US``, ``amount=100-500``, ``category=travel``) -> row mask."""
    out: dict[str, npt.NDArray[np.bool_]] = {}
    for prefix, column in SLICE_COLUMNS.items():
        values = frame[column].to_numpy().astype(str)
        for value in sorted(set(values)):
            out[f"{prefix}={value}"] = values == value
    bands = amount_band(frame["amount"])
    for name, _, _ in AMOUNT_BANDS:
        out[f"amount={name}"] = bands == name
    return out
