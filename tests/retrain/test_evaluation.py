"""Metrics at a block rate and reliability, on tiny exact examples (the gates: test_gates.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from registry.config import load_settings
from retrain.evaluation import Labelled, metrics, reliability, threshold_for_rate
from retrain.settings import RetrainSettings

LABELS = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1], dtype=np.int8)
AMOUNTS = np.array([100.0, 5, 50, 5, 5, 5, 5, 5, 5, 10])
SCORES = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.2, 0.1, 0.1, 0.05, 0.01])


def test_threshold_blocks_the_requested_share() -> None:
    assert threshold_for_rate(SCORES, 0.3) == 0.7
    assert threshold_for_rate(SCORES, 0.0001) == 0.9  # at least one row
    assert threshold_for_rate(SCORES, 1.0) == 0.01


def test_business_and_ranking_metrics() -> None:
    result = metrics(Labelled(LABELS, AMOUNTS), SCORES, threshold=0.7)
    assert result["block_rate"] == pytest.approx(0.3)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["precision"] == pytest.approx(2 / 3)
    assert result["money_saved"] == 150.0
    assert result["money_saved_share"] == pytest.approx(150 / 160)
    assert result["false_decline_rate"] == pytest.approx(1 / 7)
    assert result["roc_auc"] == pytest.approx(13 / 21)  # 7 + 6 + 0 of 21 pairs
    assert result["brier"] == pytest.approx(float(np.mean((SCORES - LABELS) ** 2)))
    legit = metrics(Labelled(LABELS[1:2], AMOUNTS[1:2]), SCORES[1:2], 0.7)
    assert (legit["roc_auc"], legit["recall"], legit["money_saved_share"]) == (None, None, None)


def test_reliability_bins_compare_predicted_and_observed() -> None:
    curve = reliability(LABELS, SCORES)
    assert curve["rows"] == [1.0] * 10
    assert curve["predicted"][-1] == 0.9
    assert curve["observed"][-1] == 1.0


def _settings(**overrides: Any) -> RetrainSettings:
    return load_settings(RetrainSettings, **overrides)


def test_review_rate_below_block_rate_is_refused_naming_both() -> None:
    from registry.config import SettingsError

    with pytest.raises(SettingsError) as caught:
        _settings(block_rate=0.05, review_rate=0.01)
    assert (
        "Value error, SHADOWLINE_REVIEW_RATE (0.01) must be >= SHADOWLINE_BLOCK_RATE (0.05): "
        "reviewed payments include blocked ones" in str(caught.value)
    )
