"""Filter rules, point-in-time labels and velocity aggregates on hand-made rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from retrain.features import add_features, filter_rows
from retrain.schema import check_frame
from retrain.sets import Window, slices, split

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
AS_OF = T0 + timedelta(days=30)


def _row(i: int, minutes: float, card: str = "c1", **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "transaction_id": f"t{i}",
        "card_id": card,
        "merchant_id": "m1",
        "event_time": T0 + timedelta(minutes=minutes),
        "amount": 10.0 * (i + 1),
        "currency": "EUR",
        "merchant_category": "retail",
        "merchant_country": "DE",
        "card_country": "DE",
        "card_age_days": 100,
        "device_age_days": None,
        "is_fraud": 0,
        "label_time": None,
    }
    row.update(extra)
    return row


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return check_frame(pd.DataFrame(rows), "test")


def test_filter_drops_duplicates_invalid_rows_and_the_future_and_hides_late_labels() -> None:
    rows = [
        _row(0, 0),
        _row(0, 0),  # re-sent
        _row(1, 1, amount=-5.0),
        _row(2, 2, currency="euro"),
        _row(3, 3, is_fraud=1, label_time=T0 + timedelta(days=3)),  # reported in time
        _row(4, 4, is_fraud=1, label_time=AS_OF + timedelta(days=3)),  # reported after as_of
        _row(5, 60 * 24 * 25),  # too young for its label to be trusted
        _row(6, 60 * 24 * 40),  # after as_of
    ]
    clean, summary = filter_rows(_frame(rows), AS_OF, label_maturity_days=14)
    assert summary.as_dict() == {
        "rows_in": 8,
        "duplicates": 1,
        "after_as_of": 1,
        "invalid": {"amount not in (0, 1e6]": 1, "currency not 3 capital letters": 1},
        "unlabelled_recent": 1,
        "fraud_reported_after_as_of": 1,
        "rows_out": 4,
        "labelled": 3,
        "labelled_frauds": 1,
    }
    assert clean["transaction_id"].tolist() == ["t0", "t3", "t4", "t5"]
    assert clean["label"].tolist() == [0, 1, 0, 0]
    assert clean["labelled"].tolist() == [True, True, True, False]


def test_velocity_counts_only_earlier_payments_of_the_same_card_in_the_window() -> None:
    rows = [
        _row(0, 0),
        _row(1, 30),
        _row(2, 50, card="c2"),
        _row(3, 59),
        _row(4, 61),  # t0 (minute 0) has left the 1-hour window
        _row(5, 60 * 25),  # only t4.. within 24h? t4 is at 61 min: 23.9h earlier
    ]
    features = add_features(_frame(rows))
    assert features["txn_count_1h"].tolist() == [0, 1, 0, 2, 2, 0]
    assert features["amount_sum_1h"].tolist() == [0.0, 10.0, 0.0, 30.0, 60.0, 0.0]
    assert features["txn_count_24h"].tolist() == [0, 1, 0, 2, 3, 1]
    assert features["amount_sum_24h"].tolist() == [0.0, 10.0, 0.0, 30.0, 70.0, 50.0]
    assert features["hour"].tolist() == [12, 12, 12, 12, 13, 13]


def test_sets_are_time_ordered_and_slices_cover_country_amount_and_category() -> None:
    rows = [
        _row(
            i,
            60 * 24 * day,
            card=f"c{i}",
            is_fraud=int(i % 2 == 0),
            label_time=T0 + timedelta(days=day + 1) if i % 2 == 0 else None,
            amount=[5.0, 50.0, 150.0, 900.0][i % 4],
        )
        for i, day in enumerate(range(0, 28, 2))
    ]
    clean, _ = filter_rows(_frame(rows), T0 + timedelta(days=60), 14)
    window = Window(
        data_start=T0 - timedelta(days=1),
        train_start=T0,
        train_end=T0 + timedelta(days=14),
        eval_end=T0 + timedelta(days=28),
    )
    train, evaluation = split(add_features(clean), window)
    assert train["event_time"].max() < evaluation["event_time"].min()
    assert (len(train), len(evaluation)) == (7, 7)
    masks = slices(evaluation)
    assert set(masks) == {
        "country=DE",
        "category=retail",
        "amount=<20",
        "amount=20-100",
        "amount=100-500",
        "amount=>=500",
    }
    assert int(np.sum(masks["amount=>=500"])) == 2
