"""Shadow analysis on hand-built records: the join, the metric, the edge cases.  No services."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from registry.records import LabelRecord, ScoreRecord
from retrain.errors import NoEvidence
from retrain.evidence.comparison import METRIC, analyze, auc, block_share, latest_labels
from tests.retrain.evidence.records import T0, label, scored, shadow, traffic

PRODUCTION = [0.95, 0.92, 0.5, 0.3, 0.2, 0.25, 0.1, 0.15, 0.4, 0.05]
CHALLENGER = [0.93, 0.2, 0.1, 0.96, 0.15, 0.4, 0.05, 0.12, 0.3, 0.02]
FRAUD = {0, 3, 5}


def _ten() -> tuple[list[ScoreRecord], list[LabelRecord]]:
    """Ten transactions; tx0, tx3, tx5 are fraud; tx8 and tx9 have no label yet.

    Production blocks tx0 (fraud) and tx1 (legit): 2 of 10, so the challenger blocks its two
    riskiest, tx3 and tx0, both fraud.
    """
    scores = [
        scored(f"tx{i}", PRODUCTION[i], shadow("v2", CHALLENGER[i]), at=T0 + i) for i in range(10)
    ]
    labels = [label(f"tx{i}", i in FRAUD) for i in range(8)]
    return scores, labels


def test_challenger_and_production_are_measured_on_the_same_transactions() -> None:
    scores, labels = _ten()
    result = analyze(scores, labels, "v2", model_name="fraud")
    assert (result.shadow_records, result.labeled_records, result.labeled_frauds) == (10, 8, 3)
    assert result.production_version == "v1"
    assert result.challenger_value == pytest.approx(2 / 3)
    assert result.production_value == pytest.approx(1 / 3)
    assert result.window_start == datetime.fromtimestamp(T0, UTC)
    assert result.window_end == datetime.fromtimestamp(T0 + 9, UTC)
    details = result.details
    assert details["production_block_rate"] == pytest.approx(0.2)
    assert details["challenger_block_threshold"] == pytest.approx(0.93)
    assert details["production_at_block_rate_precision"] == pytest.approx(0.5)
    assert details["challenger_at_block_rate_precision"] == pytest.approx(1.0)
    assert details["production_at_block_rate_false_decline_rate"] == pytest.approx(0.2)
    assert details["challenger_at_block_rate_false_decline_rate"] == pytest.approx(0.0)
    assert details["production_roc_auc"] == pytest.approx(11 / 15)
    assert details["challenger_roc_auc"] == pytest.approx(1.0)
    # Each model's own thresholds (block >= 0.9, review >= 0.6).
    assert details["challenger_own_block_recall"] == pytest.approx(2 / 3)
    assert details["production_own_block_recall"] == pytest.approx(1 / 3)
    assert details["production_own_review_precision"] == pytest.approx(0.5)
    evidence = result.evidence(report="runs/analysis.json")
    assert evidence.metric == METRIC
    assert (evidence.challenger_value, evidence.production_value) == (
        result.challenger_value,
        result.production_value,
    )
    assert evidence.regression == pytest.approx(-1 / 3)
    assert (evidence.shadow_records, evidence.labeled_records) == (10, 8)
    assert evidence.report == "runs/analysis.json"
    assert evidence.window_end == result.window_end
    assert evidence.details["labeled_frauds"] == 3.0


def test_the_latest_label_wins_and_labels_of_unscored_transactions_are_ignored() -> None:
    scores, labels = _ten()
    labels += [
        label("tx3", False, at=T0 + 90 * 86_400),  # the chargeback was reversed on review
        label("tx3", True, at=T0 + 2 * 86_400),  # a stale copy arriving late changes nothing
        label("tx1", True, at=T0 + 40 * 86_400),  # a late chargeback on a blocked payment
        label("tx-never-scored", True),
    ]
    result = analyze(scores, labels, "v2")
    assert result.labeled_frauds == 3  # tx0, tx5, and now tx1
    assert result.production_value == pytest.approx(2 / 3)  # production blocked tx0 and tx1
    assert result.challenger_value == pytest.approx(1 / 3)  # the challenger blocked tx3 and tx0
    details = result.details
    assert (details["labels_read"], details["labels_superseded"]) == (12.0, 3.0)
    assert details["labels_without_score"] == 1.0


def test_latest_labels_keeps_the_later_of_two_labels_with_the_same_time() -> None:
    first, second = label("t", True, at=5.0, source="review"), label("t", False, at=5.0)
    assert latest_labels([first, second]) == ({"t": second}, 1)


def test_records_where_the_shadow_errored_are_excluded_and_counted() -> None:
    scores, labels = _ten()
    scores.append(scored("tx10", 0.05, shadow("v2", None, error="timeout"), at=T0 + 10))
    scores.append(scored("tx11", 0.95, shadow("v2", None, error="crashed"), at=T0 + 11))
    labels += [label("tx10", False), label("tx11", True)]
    result = analyze(scores, labels, "v2")
    assert result.details["shadow_errors"] == 2.0
    assert result.details["challenger_sampled"] == 12.0
    assert (result.shadow_records, result.labeled_records, result.labeled_frauds) == (10, 8, 3)
    # Production's catch of tx11 does not count: the challenger had no score for it.
    assert result.production_value == pytest.approx(1 / 3)


def test_a_challenger_that_always_failed_has_no_evidence() -> None:
    scores = [scored(f"t{i}", 0.1, shadow("v2", None, error="timeout")) for i in range(3)]
    result = analyze(scores, [label("t0", True)], "v2")
    assert result.challenger_value is None
    with pytest.raises(NoEvidence) as caught:
        result.evidence()
    assert str(caught.value) == (
        "no shadow evidence for v2: v2 failed on every one of the 3 transactions it was sampled on"
    )


def test_no_labels_yet() -> None:
    scores, _ = _ten()
    result = analyze(scores, [], "v2", model_name="fraud")
    assert (result.shadow_records, result.labeled_records) == (10, 0)
    assert (result.challenger_value, result.production_value) == (None, None)
    assert result.details["production_block_rate"] == pytest.approx(0.2)
    with pytest.raises(NoEvidence) as caught:
        result.evidence()
    assert str(caught.value) == (
        "no shadow evidence for fraud:v2: none of the 10 compared transactions has a label yet"
    )


def test_no_fraud_among_the_labels() -> None:
    scores, _ = _ten()
    labels = [label(f"tx{i}", False) for i in range(6)]
    result = analyze(scores, labels, "v2")
    assert (result.labeled_records, result.labeled_frauds) == (6, 0)
    assert result.challenger_value is None
    # What can be measured without fraud still is: false declines at the same volume.
    assert result.details["production_at_block_rate_false_decline_rate"] == pytest.approx(2 / 6)
    assert "challenger_roc_auc" not in result.details
    with pytest.raises(NoEvidence, match=r"none of the 6 labeled transactions is fraud \(yet\)$"):
        result.evidence()


def test_a_challenger_never_sampled() -> None:
    scores, labels = _ten()
    result = analyze(scores, labels, "v9")
    assert (result.shadow_records, result.production_version, result.window_start) == (
        0,
        None,
        None,
    )
    assert result.details["scores_read"] == 10.0
    with pytest.raises(NoEvidence, match=r"for v9: v9 was never scored in shadow"):
        result.evidence()


def test_only_transactions_answered_by_the_production_compared_against_count() -> None:
    scores, labels = _ten()
    # Before v1, v0 answered (and v2 was already in shadow): those are not a v1 comparison.
    scores += [
        scored(
            f"old{i}",
            0.97 if i < 2 else 0.1,
            shadow("v2", 0.01 + i / 100),
            at=T0 - 100 + i,
            production_version="v0",
        )
        for i in range(4)
    ]
    labels += [label(f"old{i}", i < 2) for i in range(4)]
    latest = analyze(scores, labels, "v2")  # default: the production of the newest record
    assert latest.production_version == "v1"
    assert latest.shadow_records == 10
    assert latest.details["other_production_records"] == 4.0
    assert latest.challenger_value == pytest.approx(2 / 3)
    old = analyze(scores, labels, "v2", production_version="v0")
    assert (old.shadow_records, old.challenger_value, old.production_value) == (4, 0.0, 1.0)
    missing = analyze(scores, labels, "v2", production_version="v7")
    with pytest.raises(NoEvidence) as caught:
        missing.evidence()
    assert str(caught.value) == (
        "no shadow evidence for v2: none of the transactions v2 scored was answered by "
        "production v7 (they were answered by v0, v1)"
    )


def test_other_models_and_repeated_score_records() -> None:
    scores, labels = _ten()
    scores.append(scored("tx0", 0.95, shadow("v2", 0.01), at=T0 - 50))  # an older duplicate
    scores.append(scored("tx0", 0.05, shadow("v2", 0.99), model_name="chargebacks"))
    result = analyze(scores, labels, "v2", model_name="fraud")
    assert result.details["duplicate_score_records"] == 1.0
    assert result.details["other_model_records"] == 1.0
    assert result.shadow_records == 10
    assert result.challenger_value == pytest.approx(2 / 3)  # tx0 keeps its newest score, 0.93


def test_production_that_blocks_nothing_gives_no_evidence() -> None:
    # 0 caught against 0 caught would let any challenger through the policy.
    scores = [scored(f"t{i}", 0.1 + i / 100, shadow("v2", 0.5 + i / 100)) for i in range(4)]
    result = analyze(scores, [label("t0", True), label("t1", False)], "v2")
    assert (result.challenger_value, result.production_value) == (None, None)
    assert result.details["production_block_rate"] == 0.0
    assert result.why_undefined == (
        "production blocked none of the 4 compared transactions: there is no block volume to "
        "compare at"
    )
    with pytest.raises(NoEvidence):
        result.evidence()


def test_unlabeled_blocked_transactions_give_no_evidence() -> None:
    # Labels often come only for approved payments (chargebacks): production then catches no
    # labeled fraud and a random challenger blocking the same volume would look better.
    scores, labels = _ten()
    blocked = {"tx0", "tx1"}  # production's two blocks
    result = analyze(scores, [lb for lb in labels if lb.transaction_id not in blocked], "v2")
    assert result.challenger_value is None
    assert result.details["production_blocked_label_coverage"] == 0.0
    assert result.why_undefined is not None
    assert result.why_undefined.startswith(
        "only 0.0% of the 2 transactions production blocked have a label (at least 10% needed)"
    )


def test_a_better_and_a_worse_challenger_on_generated_traffic() -> None:
    scores, labels = traffic(1200, {"v2": 3, "v3": 1})
    good = analyze(scores, labels, "v2")
    worse = analyze(scores, labels, "v3")
    assert good.shadow_records == worse.shadow_records == 1200
    assert good.labeled_frauds == 60
    assert good.production_value == worse.production_value == pytest.approx(0.5)
    # v2: 45 frauds + 12 legit tied at 0.97 share production's 42 blocks.
    assert good.challenger_value == pytest.approx(45 * 42 / 57 / 60)
    assert worse.challenger_value == pytest.approx(15 / 60)


def test_block_share_blocks_exactly_the_volume_even_with_ties() -> None:
    scores = np.array([0.9, 0.5, 0.5, 0.5, 0.1])
    assert block_share(scores, 2).tolist() == pytest.approx([1.0, 1 / 3, 1 / 3, 1 / 3, 0.0])
    assert block_share(scores, 0).tolist() == [0.0] * 5
    assert block_share(scores, 9).tolist() == [1.0] * 5


def test_auc_counts_ties_as_half_and_needs_both_classes() -> None:
    labels = np.array([True, False, True, False])
    assert auc(labels, np.array([0.8, 0.8, 0.9, 0.1])) == pytest.approx(0.875)
    assert auc(labels, np.array([0.1, 0.2, 0.3, 0.4])) == pytest.approx(0.25)
    assert auc(np.array([True, True]), np.array([0.1, 0.2])) is None
