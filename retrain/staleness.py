"""Staleness made visible: a model that is never retrained against one retrained monthly.

Simulated time on the synthetic stream.  The "stale" model is trained once, at ``t0`` (on
the ``train_weeks`` of data whose labels had matured by then); for each following month a
"fresh" model is trained at the month's start the same way.  Both are scored on that month
with the labels as they are finally known, at the configured block rate.  Month 1 is the
baseline (both models are the same); later months show what staleness costs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from retrain.encoding import FeatureEncoder
from retrain.evaluation import Labelled, metrics, threshold_for_rate
from retrain.features import add_features, filter_rows
from retrain.runner import trainer_from_settings
from retrain.settings import RetrainSettings
from retrain.synthetic import EPOCH, SyntheticSource
from retrain.training import TrainedModel

MONTH = timedelta(weeks=4)
_KEYS = ("roc_auc", "pr_auc", "recall", "money_saved_share")


def _train(
    raw: pd.DataFrame, settings: RetrainSettings, as_of: pd.Timestamp
) -> tuple[FeatureEncoder, TrainedModel]:
    clean, _ = filter_rows(
        raw.loc[raw["event_time"] <= as_of], as_of.to_pydatetime(), settings.label_maturity_days
    )
    frame = add_features(clean)
    start = as_of - timedelta(days=settings.label_maturity_days, weeks=settings.train_weeks)
    train = frame.loc[frame["labelled"] & (frame["event_time"] >= start)]
    encoder = FeatureEncoder.fit(train)
    trainer = trainer_from_settings(settings)
    model = trainer.fit(
        encoder.transform(train), train["label"].to_numpy(np.int8), encoder.feature_names
    )
    return encoder, model


def _score(
    pair: tuple[FeatureEncoder, TrainedModel], frame: pd.DataFrame, rate: float
) -> dict[str, float | None]:
    encoder, model = pair
    scores = model.predict(encoder.transform(frame))
    data = Labelled(frame["label"].to_numpy(np.int8), frame["amount"].to_numpy(np.float64))
    return metrics(data, scores, threshold_for_rate(scores, rate))


def measure(settings: RetrainSettings, *, months: int, rows_per_week: int) -> list[dict[str, Any]]:
    """One row per simulated month: stale vs fresh metrics and the loss (fresh - stale)."""
    source = SyntheticSource(seed=settings.synthetic_seed, rows_per_week=rows_per_week)
    t0 = pd.Timestamp(EPOCH + timedelta(weeks=settings.train_weeks + 4))
    end = t0 + months * MONTH
    raw = source.load(EPOCH, end.to_pydatetime())
    # Evaluation uses hindsight: every label that will ever arrive.
    truth, _ = filter_rows(raw, (end + timedelta(days=120)).to_pydatetime(), 0)
    truth = add_features(truth)
    stale = _train(raw, settings, t0)
    table = []
    for month in range(months):
        start = t0 + month * MONTH
        fresh = stale if month == 0 else _train(raw, settings, start)
        when = truth["event_time"]
        rows = truth.loc[(when >= start) & (when < start + MONTH)]
        old = _score(stale, rows, settings.block_rate)
        new = _score(fresh, rows, settings.block_rate)
        table.append(
            {
                "month": month + 1,
                "start": start.date().isoformat(),
                "rows": len(rows),
                "frauds": int(rows["label"].sum()),
                "stale": {k: old[k] for k in _KEYS},
                "fresh": {k: new[k] for k in _KEYS},
                "loss": {k: round((new[k] or 0.0) - (old[k] or 0.0), 4) for k in _KEYS},
            }
        )
    return table


def format_table(table: list[dict[str, Any]]) -> str:
    """The measurements as a fixed-width table (also shown in docs/retrain.md)."""
    lines = [
        "month  start       frauds  ROC-AUC stale/fresh  PR-AUC stale/fresh  "
        "recall@block stale/fresh  loss(PR-AUC)"
    ]
    for row in table:
        s, f = row["stale"], row["fresh"]
        lines.append(
            f"{row['month']:>5}  {row['start']}  {row['frauds']:>6}  "
            f"{s['roc_auc']:.4f} / {f['roc_auc']:.4f}      {s['pr_auc']:.4f} / {f['pr_auc']:.4f}"
            f"     {s['recall']:.4f} / {f['recall']:.4f}            {row['loss']['pr_auc']:+.4f}"
        )
    return "\n".join(lines)
