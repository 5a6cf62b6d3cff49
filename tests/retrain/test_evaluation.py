"""Metrics at a block rate, reliability, and the gates' verdicts -- on tiny exact examples."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from registry.config import load_settings
from retrain.evaluation import Labelled, evaluate_model, metrics, reliability, threshold_for_rate
from retrain.gates import apply_gates
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


def _evaluation(candidate: np.ndarray, production: np.ndarray | None) -> dict[str, Any]:
    data = Labelled(np.tile(LABELS, 10), np.tile(AMOUNTS, 10))
    masks = {"country=DE": np.arange(100) < 50, "country=FR": np.arange(100) >= 90}
    models = {"candidate": evaluate_model(data, np.tile(candidate, 10), 0.3, masks)}
    if production is not None:
        models["production"] = evaluate_model(data, np.tile(production, 10), 0.3, masks)
    return {"models": models, "production_note": None}


def _settings(**overrides: Any) -> RetrainSettings:
    values = {"gate_min_slice_rows": 40, "gate_min_slice_frauds": 5, **overrides}
    return load_settings(RetrainSettings, **values)


def test_gates_pass_within_tolerance_and_skip_tiny_slices() -> None:
    result = apply_gates(_evaluation(SCORES, SCORES), _settings())
    assert result.passed
    assert result.reason == "recall within 0.02 of production overall and in 1 slices"
    assert [c.scope for c in result.checks] == ["overall", "country=DE"]  # FR has 10 rows


def test_gates_fail_with_a_reason_naming_scope_and_numbers() -> None:
    worse = SCORES.copy()
    worse[2] = 0.0  # the second fraud is no longer caught
    result = apply_gates(_evaluation(worse, SCORES), _settings())
    assert not result.passed
    assert result.reason == (
        "gate failed (tolerance 0.02): overall: recall fell 0.333 below production "
        "(0.333 vs 0.667); country=DE: recall fell 0.333 below production (0.333 vs 0.667)"
    )


def test_without_production_the_gates_pass_and_say_why() -> None:
    result = apply_gates(_evaluation(SCORES, None), _settings())
    assert result.passed
    assert result.reason == "no production model: candidate evaluated alone, no comparison gate"
    assert result.checks == ()


def test_review_rate_below_block_rate_is_refused_naming_both() -> None:
    from registry.config import SettingsError

    with pytest.raises(SettingsError) as caught:
        _settings(block_rate=0.05, review_rate=0.01)
    assert (
        "Value error, SHADOWLINE_REVIEW_RATE (0.01) must be >= SHADOWLINE_BLOCK_RATE (0.05): "
        "reviewed payments include blocked ones" in str(caught.value)
    )
