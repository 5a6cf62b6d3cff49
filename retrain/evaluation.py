"""Offline evaluation: ranking, business and calibration metrics, overall and per slice.

Every model is judged at the same block rate -- production's, when there is a production
model (the share of evaluation payments its own block threshold blocks), else the configured
``block_rate`` -- so "recall" means "share of fraud caught for the same number of blocked
customers", which is the trade the fraud team actually makes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
RELIABILITY_BINS = 10


@dataclass(frozen=True)
class Labelled:
    """The evaluation set as the metrics need it: 0/1 labels and payment amounts."""

    labels: npt.NDArray[np.int8]
    amounts: Floats


def threshold_for_rate(scores: Floats, rate: float) -> float:
    """The lowest score that blocks about ``rate`` of the rows (the k-th highest score)."""
    k = min(max(1, round(rate * len(scores))), len(scores))
    return float(np.partition(scores, len(scores) - k)[len(scores) - k])


def _auc(labels: npt.NDArray[np.int8], scores: Floats) -> tuple[float | None, float | None]:
    if labels.min() == labels.max():
        return None, None  # one class only: ranking metrics are undefined
    from sklearn.metrics import average_precision_score, roc_auc_score

    return float(roc_auc_score(labels, scores)), float(average_precision_score(labels, scores))


def metrics(data: Labelled, scores: Floats, threshold: float) -> dict[str, float | None]:
    """All metrics of one model on one set of rows, blocking at ``threshold``."""
    labels = data.labels
    fraud = labels == 1
    blocked = scores >= threshold
    roc_auc, pr_auc = _auc(labels, scores) if len(labels) else (None, None)
    fraud_amount = float(data.amounts[fraud].sum())
    caught = float(data.amounts[fraud & blocked].sum())
    n_fraud = int(fraud.sum())
    n_legit = len(labels) - n_fraud
    return {
        "rows": float(len(labels)),
        "frauds": float(n_fraud),
        "roc_auc": roc_auc,
        "pr_auc": pr_auc,
        "block_rate": float(blocked.mean()) if len(labels) else None,
        "recall": float((fraud & blocked).sum() / n_fraud) if n_fraud else None,
        "precision": float((fraud & blocked).sum() / blocked.sum()) if blocked.any() else None,
        "money_saved": caught,
        "money_saved_share": caught / fraud_amount if fraud_amount > 0 else None,
        "false_decline_rate": float((~fraud & blocked).sum() / n_legit) if n_legit else None,
        "brier": float(np.mean((scores - labels) ** 2)) if len(labels) else None,
    }


def reliability(labels: npt.NDArray[np.int8], scores: Floats) -> dict[str, list[float]]:
    """Mean predicted vs observed fraud rate in equal-count bins of the score."""
    order = np.argsort(scores, kind="stable")
    predicted: list[float] = []
    observed: list[float] = []
    counts: list[float] = []
    for part in np.array_split(order, RELIABILITY_BINS):
        if len(part):
            predicted.append(float(scores[part].mean()))
            observed.append(float(labels[part].mean()))
            counts.append(float(len(part)))
    return {"predicted": predicted, "observed": observed, "rows": counts}


def evaluate_model(
    data: Labelled, scores: Floats, rate: float, slices: Mapping[str, Bools]
) -> dict[str, object]:
    """One model's evaluation: its threshold at ``rate``, metrics overall and per slice."""
    threshold = threshold_for_rate(scores, rate)
    per_slice = {
        name: metrics(Labelled(data.labels[mask], data.amounts[mask]), scores[mask], threshold)
        for name, mask in slices.items()
        if mask.any()
    }
    return {
        "threshold": threshold,
        "overall": metrics(data, scores, threshold),
        "slices": per_slice,
        "reliability": reliability(data.labels, scores),
    }


def production_block_rate(scores: Floats, block_threshold: float) -> float:
    """The share of rows production's own block threshold blocks."""
    return float((scores >= block_threshold).mean())


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
