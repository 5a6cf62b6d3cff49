"""The synthetic stream: reproducible, realistic rates, and drifting the way the brief says."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from retrain.schema import COLUMN_NAMES, check_frame
from retrain.synthetic import EPOCH, MARKETPLACE, SyntheticSource, fraud_rate, mode_weights

SOURCE = SyntheticSource(seed=3, rows_per_week=4000)


def test_same_seed_same_rows_and_a_week_is_the_same_in_every_window() -> None:
    a = SOURCE.load(EPOCH + timedelta(weeks=2), EPOCH + timedelta(weeks=4))
    b = SyntheticSource(seed=3, rows_per_week=4000).load(
        EPOCH + timedelta(weeks=3), EPOCH + timedelta(weeks=5)
    )
    week3 = EPOCH + timedelta(weeks=3)
    pd.testing.assert_frame_equal(
        a.loc[a["event_time"] >= week3].reset_index(drop=True),
        b.loc[b["event_time"] < week3 + timedelta(weeks=1)].reset_index(drop=True),
    )
    other = SyntheticSource(seed=4, rows_per_week=4000).week(3)
    assert not other["amount"].equals(SOURCE.week(3)["amount"])


def test_rows_follow_the_documented_schema() -> None:
    frame = SOURCE.week(1)
    checked = check_frame(frame, "synthetic")
    assert tuple(checked.columns) == COLUMN_NAMES
    assert (checked["label_time"].notna() == (checked["is_fraud"] == 1)).all()


def test_fraud_rate_and_label_delays_are_realistic() -> None:
    frame = SOURCE.load(EPOCH, EPOCH + timedelta(weeks=8))
    rate = frame["is_fraud"].mean()
    assert 0.001 <= rate <= 0.01
    assert all(0.001 <= fraud_rate(w) <= 0.01 for w in range(60))
    fraud = frame.loc[frame["is_fraud"] == 1]
    delay_days = (fraud["label_time"] - fraud["event_time"]).dt.total_seconds() / 86400
    assert delay_days.min() >= 1.0
    assert delay_days.max() <= 90.0
    assert 5.0 <= delay_days.median() <= 20.0  # chargebacks: days to weeks


def test_patterns_shift_new_geographies_open_and_the_marketplace_changes() -> None:
    assert not (mode_weights(2) == mode_weights(6)).all()
    early = SOURCE.load(EPOCH, EPOCH + timedelta(weeks=2))
    late = SOURCE.load(EPOCH + timedelta(weeks=12), EPOCH + timedelta(weeks=14))
    assert set(late["card_country"]) - set(early["card_country"]) >= {"NG", "IN", "VN"}
    hot_early = early.loc[early["is_fraud"] == 1, "merchant_category"].value_counts().index[:3]
    hot_late = late.loc[late["is_fraud"] == 1, "merchant_category"].value_counts().index[:3]
    assert list(hot_early) != list(hot_late)

    def foreign_share(frame: pd.DataFrame) -> float:
        shop = frame.loc[frame["merchant_id"] == MARKETPLACE]
        return float((shop["card_country"] != "GB").mean())

    assert foreign_share(late) > foreign_share(early) + 0.2
    assert early.loc[early["merchant_id"] == MARKETPLACE, "is_fraud"].sum() == 0
    assert late.loc[late["merchant_id"] == MARKETPLACE, "is_fraud"].sum() > 0


def test_fraud_keeps_moving_after_every_country_has_opened() -> None:
    """The frontier of new-geography fraud comes round again once every country trades, so a
    model trained six weeks ago is stale on any date (the demo relies on it)."""
    from retrain.synthetic import EMERGING, ESTABLISHED, frontier, opening_week

    last_opening = opening_week(len(ESTABLISHED) + len(EMERGING) - 1)
    first_cycle = opening_week(len(ESTABLISHED)) + 2 * len(EMERGING)
    for week in range(1, first_cycle):  # until it comes round: the newest countries, as before
        expected = [
            i
            for i in range(len(ESTABLISHED), len(ESTABLISHED) + len(EMERGING))
            if 0 <= week - opening_week(i) <= 5
        ]
        assert frontier(week, 5) == expected
    for week in range(last_opening, last_opening + 200):
        now, six_weeks_ago = set(frontier(week, 5)), set(frontier(week - 6, 5))
        assert now, week
        assert now.isdisjoint(six_weeks_ago), week
