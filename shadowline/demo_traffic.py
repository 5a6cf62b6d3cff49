"""The demo's traffic and its late labels, from the synthetic source's ground truth.

Transactions come from the same seeded synthetic stream the models were trained on, a week past
the challenger's training data, with the features the pipeline computes (velocity aggregates
need the day before, so it is loaded too).  Fraud is enriched to ``fraud_share`` so that a
minute of traffic carries hundreds of frauds (real traffic carries about 0.4%): the evidence
needs matured frauds, and a demo cannot wait for thousands of payments.

Labels arrive the way chargebacks do, compressed: a fraud whose payment went ahead (production
allowed it, sent it to review, or explored it) gets a fraud label a few *seconds* after its
score, where real chargebacks take days; a payment production blocked never gets one (it never
happened), unless it was explored.  Legitimate payments get no label: once matured, no
chargeback means legitimate.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

BATCH = 500
DELAY_MEDIAN_S = 3.0  # compressed: seconds here stand for days of chargeback delay


@dataclass(frozen=True)
class Transaction:
    transaction_id: str
    features: dict[str, Any]
    is_fraud: bool


@dataclass
class Sent:
    """What the scorer answered: decisions by transaction, and when each was scored."""

    decisions: dict[str, str]
    scored_at: dict[str, float]
    failed: int = 0


def transactions(
    start: datetime,
    count: int,
    fraud_share: float,
    *,
    seed: int,
    rows_per_week: int,
    stamp: str,
    days: int = 7,
) -> list[Transaction]:
    """``count`` transactions of the ``days`` from ``start`` (about ``fraud_share`` fraud, as
    far as the stream has frauds), as the model's inputs, with their truth."""
    from retrain.features import add_features
    from retrain.schema import CATEGORICAL_FEATURES, NUMERIC_FEATURES
    from retrain.synthetic import SyntheticSource

    frame = SyntheticSource(seed=seed, rows_per_week=rows_per_week).load(
        start - timedelta(days=1), start + timedelta(days=days)
    )
    clean = (
        (frame["amount"] > 0)
        & (frame["amount"] <= 1e6)
        & (frame["card_age_days"] >= 0)
        & ~(frame["device_age_days"] < 0)
        & (frame["merchant_category"].str.len() > 0)
    )
    frame = add_features(frame.loc[clean].drop_duplicates("transaction_id").reset_index(drop=True))
    frame = frame.loc[frame["event_time"] >= start]
    rng = np.random.default_rng(seed)
    frauds = frame.index[frame["is_fraud"] == 1].to_numpy()
    legit = frame.index[frame["is_fraud"] == 0].to_numpy()
    n_fraud = min(len(frauds), round(count * fraud_share))
    picked = np.concatenate(
        [
            rng.choice(frauds, n_fraud, replace=False),
            rng.choice(legit, min(len(legit), count - n_fraud), replace=False),
        ]
    )
    rng.shuffle(picked)
    names = NUMERIC_FEATURES + CATEGORICAL_FEATURES
    out = []
    for n, row in enumerate(frame.loc[picked, [*names, "is_fraud"]].to_dict("records")):
        features = {
            str(k): (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in row.items()
            if k != "is_fraud"
        }
        out.append(
            Transaction(
                transaction_id=f"demo-{stamp}-{n:05d}",
                features=features,
                is_fraud=bool(row["is_fraud"]),
            )
        )
    return out


def post(url: str, body: bytes, token: str | None = None, timeout_s: float = 30) -> tuple[int, Any]:
    """POST JSON to the local scorer; (status, parsed answer)."""
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def send(base: str, traffic: list[Transaction], rate: float) -> Sent:
    """Score ``traffic`` in batches through ``/v1/score/batch``, at about ``rate`` a second
    (the shadows keep up instead of being shed)."""
    sent = Sent(decisions={}, scored_at={})
    for first in range(0, len(traffic), BATCH):
        started = time.monotonic()
        batch = traffic[first : first + BATCH]
        body = {
            "transactions": [
                {"transaction_id": t.transaction_id, "features": t.features} for t in batch
            ]
        }
        status, answer = post(f"{base}/v1/score/batch", json.dumps(body).encode())
        now = time.time()
        if status != 200:
            sent.failed += len(batch)
            continue
        for result in answer["results"]:
            sent.decisions[result["transaction_id"]] = result["decision"]
            sent.scored_at[result["transaction_id"]] = now
        time.sleep(max(0.0, len(batch) / rate - (time.monotonic() - started)))
    return sent


def due_labels(
    traffic: list[Transaction], sent: Sent, *, seed: int, now: float
) -> tuple[list[dict[str, Any]], int]:
    """The fraud labels that have arrived by ``now`` (delays log-normal, median
    :data:`DELAY_MEDIAN_S`), and how many frauds stay hidden behind production's blocks."""
    rng = np.random.default_rng(seed)
    labels, hidden = [], 0
    for item in traffic:
        if not item.is_fraud or item.transaction_id not in sent.decisions:
            continue
        if sent.decisions[item.transaction_id] == "block":
            hidden += 1  # blocked: no chargeback will ever come
            continue
        at = sent.scored_at[item.transaction_id] + float(
            np.exp(rng.normal(math.log(DELAY_MEDIAN_S), 0.6))
        )
        if at <= now:
            labels.append(
                {
                    "transaction_id": item.transaction_id,
                    "is_fraud": True,
                    "label_time": at,
                    "source": "chargeback",
                }
            )
    return labels, hidden
