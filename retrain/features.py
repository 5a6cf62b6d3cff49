"""The ``filter`` and ``features`` steps: clean rows, point-in-time labels, velocity aggregates.

Point-in-time correctness is the point of this module.  A run at ``as_of`` may only use what
was known at ``as_of``:

* a fraud report that arrives after ``as_of`` is not known yet: that row counts as legitimate
  (exactly what a team exporting its data at ``as_of`` would see);
* a payment younger than ``label_maturity_days`` has no trustworthy label yet (its chargeback
  may still come), so it is kept for the velocity aggregates but marked ``labelled = False``
  and never trained or evaluated on;
* payments after ``as_of`` do not exist yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd

_CODE = r"^[A-Z]{2}$"
_CURRENCY = r"^[A-Z]{3}$"


@dataclass(frozen=True)
class FilterSummary:
    """How many rows each rule removed or set aside, for the run record and the report."""

    rows_in: int
    duplicates: int
    invalid: dict[str, int]
    after_as_of: int
    unlabelled_recent: int
    fraud_reported_after_as_of: int
    rows_out: int
    labelled: int
    labelled_frauds: int

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _validity(frame: pd.DataFrame) -> dict[str, npt.NDArray[np.bool_]]:
    """Rule name -> rows breaking it.  Every rule is one vectorised test."""
    return {
        "amount not in (0, 1e6]": ~((frame["amount"] > 0) & (frame["amount"] <= 1e6)).to_numpy(),
        "card_age_days < 0": (frame["card_age_days"] < 0).to_numpy(),
        "device_age_days < 0": (frame["device_age_days"] < 0).fillna(False).to_numpy(),
        "currency not 3 capital letters": ~frame["currency"].str.match(_CURRENCY).to_numpy(),
        "merchant_country not 2 capital letters": ~frame["merchant_country"]
        .str.match(_CODE)
        .to_numpy(),
        "card_country not 2 capital letters": ~frame["card_country"].str.match(_CODE).to_numpy(),
        "merchant_category empty": (frame["merchant_category"].str.len() == 0).to_numpy(),
        "fraud without label_time": (
            (frame["is_fraud"] == 1) & frame["label_time"].isna()
        ).to_numpy(),
        "label_time before event_time": (frame["label_time"] < frame["event_time"])
        .fillna(False)
        .to_numpy(),
    }


def filter_rows(
    frame: pd.DataFrame, as_of: datetime, label_maturity_days: int
) -> tuple[pd.DataFrame, FilterSummary]:
    """Drop duplicates, invalid rows and the future; set labels as known at ``as_of``.

    Returns the rows sorted by event time with two added columns: ``label`` (0/1, the label
    known at ``as_of``) and ``labelled`` (the label is mature enough to train or evaluate on).
    """
    rows_in = len(frame)
    frame = frame.drop_duplicates(subset="transaction_id", keep="first")
    duplicates = rows_in - len(frame)
    future = (frame["event_time"] > as_of).to_numpy()
    frame = frame.loc[~future]
    broken = _validity(frame)
    bad = np.zeros(len(frame), dtype=bool)
    for mask in broken.values():
        bad |= mask
    invalid = {rule: int(mask.sum()) for rule, mask in broken.items() if mask.any()}
    frame = frame.loc[~bad].sort_values("event_time", kind="stable").reset_index(drop=True)
    reported = (frame["is_fraud"] == 1) & (frame["label_time"] <= as_of)
    late = int(((frame["is_fraud"] == 1) & ~reported).sum())
    mature = frame["event_time"] <= as_of - timedelta(days=label_maturity_days)
    frame = frame.assign(label=reported.astype(np.int8), labelled=mature.to_numpy())
    summary = FilterSummary(
        rows_in=rows_in,
        duplicates=duplicates,
        invalid=invalid,
        after_as_of=int(future.sum()),
        unlabelled_recent=int((~mature).sum()),
        fraud_reported_after_as_of=late,
        rows_out=len(frame),
        labelled=int(mature.sum()),
        labelled_frauds=int(frame.loc[mature, "label"].sum()),
    )
    return frame, summary


def _window_aggregates(
    card: npt.NDArray[np.int64], seconds: npt.NDArray[np.float64], amount: Floats, window: float
) -> tuple[npt.NDArray[np.int64], Floats]:
    """Count and sum of each card's *earlier* payments within ``window`` seconds.

    Rows must be sorted by (card, seconds).  One searchsorted on a combined (card, time) key
    finds each window's first row, and prefix sums give counts and sums: O(n log n), no loop.
    """
    span = float(seconds.max() - seconds.min() + 2 * window + 1) if len(seconds) else 1.0
    key = card.astype(np.float64) * span + (seconds - (seconds.min() if len(seconds) else 0))
    first = np.searchsorted(key, key - window, side="left")
    index = np.arange(len(key))
    prefix = np.concatenate([[0.0], np.cumsum(amount)])
    return index - first, prefix[index] - prefix[first]


Floats = npt.NDArray[np.float64]


def add_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The model inputs of every row: the raw fields plus hour and velocity aggregates.

    Velocity counts only earlier payments of the same card (the scorer's feature store sees
    the same thing at authorisation time).  Where the frame already holds one of these
    columns (inputs recorded as production's scorer received them), its values are kept and
    only its missing ones computed.  Row order is kept.
    """
    card_codes, _ = pd.factorize(frame["card_id"])
    seconds = frame["event_time"].astype("int64").to_numpy() / 1e6
    # Unit is microseconds for our frames; normalise whatever unit pandas chose.
    unit = frame["event_time"].dt.unit
    seconds = seconds * {"s": 1e6, "ms": 1e3, "us": 1.0, "ns": 1e-3}[unit]
    order = np.lexsort((seconds, card_codes))
    amount = frame["amount"].to_numpy(dtype=np.float64)
    out = frame.copy()
    out["hour"] = frame["event_time"].dt.hour.astype(np.int64)
    for label, window in (("1h", 3600.0), ("24h", 86400.0)):
        count, total = _window_aggregates(
            card_codes[order].astype(np.int64), seconds[order], amount[order], window
        )
        counts = np.empty_like(count)
        sums = np.empty_like(total)
        counts[order] = count
        sums[order] = total
        out[f"txn_count_{label}"] = counts.astype(np.int64)
        out[f"amount_sum_{label}"] = np.round(sums, 2)
    for name in _DERIVED:
        if name in frame.columns:
            kept = frame[name].fillna(out[name])
            out[name] = kept.astype(out[name].dtype) if name in _COUNTS else kept
    return out


_COUNTS = ("hour", "txn_count_1h", "txn_count_24h")
_DERIVED = (*_COUNTS, "amount_sum_1h", "amount_sum_24h")
