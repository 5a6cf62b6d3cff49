"""Shadow analysis on hand-built records: pairing, every metric's value, the edge cases.

Values here are worked out by hand on ten transactions; the intervals' coverage is tested by
simulation in ``test_simulation.py``.  No services.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from scipy import stats

from registry.records import LabelRecord, ScoreRecord
from retrain.errors import NoEvidence
from retrain.evidence.comparison import Comparison, Options, compare
from retrain.evidence.frame import BLOCK, pair_many, pair_records
from retrain.evidence.signals import ks, psi, spearman
from tests.retrain.evidence.records import T0, label, scored, shadow
from tests.retrain.evidence.simulation import AS_OF, World

DAY = 86_400.0
PRODUCTION = [0.95, 0.92, 0.5, 0.3, 0.2, 0.25, 0.1, 0.15, 0.4, 0.05]
CHALLENGER = [0.93, 0.2, 0.1, 0.96, 0.15, 0.4, 0.05, 0.12, 0.3, 0.02]
FRAUD = {0, 3, 5}
LATER = Options(as_of=T0 + 60 * DAY, replicates=200, seed=1)


def _ten() -> tuple[list[ScoreRecord], list[LabelRecord]]:
    """Ten transactions; tx0, tx3, tx5 are fraud; tx8 and tx9 have no label (no chargeback:
    legitimate once matured).  Production blocks tx0 (fraud) and tx1 (legitimate, labeled by
    a reviewer); the challenger blocks as many, its riskiest: tx3 and tx0, both fraud."""
    scores = [
        scored(f"tx{i}", PRODUCTION[i], shadow("v2", CHALLENGER[i]), at=T0 + i) for i in range(10)
    ]
    labels = [label(f"tx{i}", i in FRAUD) for i in range(8)]
    return scores, labels


def _compare(
    scores: list[ScoreRecord], labels: list[LabelRecord], options: Options = LATER
) -> Comparison:
    rows, sampling, production = pair_records(
        scores, labels, "v2", model_name="fraud", amount_field="amount", as_of=options.as_of
    )
    return compare(
        rows,
        sampling,
        version="v2",
        production_version=production,
        options=options,
        model_name="fraud",
    )


def test_both_models_are_measured_on_the_same_matured_transactions() -> None:
    result = _compare(*_ten())
    evidence = result.evidence
    assert (evidence.shadow_records, evidence.matured_records, evidence.matured_frauds) == (
        10,
        10,
        3,
    )
    assert evidence.labeled_records == 10  # tx8, tx9: no chargeback, so legitimate
    assert (evidence.production_version, evidence.estimator) == ("v1", "observed")
    assert evidence.window_start == datetime.fromtimestamp(T0, UTC)
    assert evidence.window_end == datetime.fromtimestamp(T0 + 9, UTC)
    values = {m.name: (m.challenger, m.production) for m in evidence.metrics}
    assert values["fraud_caught_at_block_rate"] == pytest.approx((2 / 3, 1 / 3))
    assert values["money_caught_at_block_rate"] == pytest.approx((2 / 3, 1 / 3))
    assert values["precision_at_block_rate"] == pytest.approx((1.0, 0.5))
    assert values["false_decline_rate_at_block_rate"] == pytest.approx((0.0, 1 / 7))
    assert values["recall_at_own_threshold"] == pytest.approx((2 / 3, 1 / 3))
    assert values["roc_auc"] == pytest.approx((1.0, 15 / 21))
    assert (evidence.challenger_value, evidence.production_value) == pytest.approx((2 / 3, 1 / 3))
    assert evidence.difference == pytest.approx(1 / 3)
    assert evidence.difference_ci is not None  # ten rows: some metrics have no interval
    for metric in evidence.metrics:
        assert (metric.frauds, metric.transactions) == (3, 10)
        ci = metric.difference_ci
        if ci is not None:
            assert ci.low <= (metric.difference or 0) <= ci.high
    assert evidence.decision_low is not None
    assert evidence.decision_level == pytest.approx(0.975)
    assert result.require() is evidence


def test_the_intervals_are_reproducible_for_a_seed() -> None:
    rows, sampling = World().draw(np.random.default_rng(5), 3000, delay_days=1.0)

    def interval(seed: int) -> object:
        options = Options(as_of=AS_OF, replicates=200, seed=seed)
        result = compare(rows, sampling, version="v2", production_version="v1", options=options)
        return result.evidence.difference_ci

    assert interval(1) == interval(1)
    assert interval(1) != interval(2)


def test_the_latest_label_wins_and_odd_labels_are_counted_not_used() -> None:
    scores, labels = _ten()
    labels += [
        label("tx3", False, at=T0 + 50 * DAY),  # the chargeback was reversed on review
        label("tx3", True, at=T0 + 2 * DAY),  # a stale copy arriving late changes nothing
        label("tx1", True, at=T0 + 40 * DAY),  # a late chargeback on a blocked payment
        label("tx-never-scored", True),
        label("tx8", True, at=T0 - DAY),  # dated before its transaction was scored
        label("tx4", True, at=T0 + 90 * DAY),  # after the analysis time: not known yet
    ]
    result = _compare(scores, labels)
    evidence = result.evidence
    assert evidence.matured_frauds == 3  # tx0, tx5 and tx1; tx3 reversed; tx8, tx4 refused
    values = {m.name: (m.challenger, m.production) for m in evidence.metrics}
    assert values["fraud_caught_at_block_rate"] == pytest.approx((1 / 3, 2 / 3))
    assert result.sampling.labels_before_score == ["tx8"]
    assert result.labels_after == ("tx4",)
    assert evidence.details["labels_superseded"] == 3
    assert evidence.details["labels_without_score"] == 1
    assert evidence.details["labels_before_score"] == 1


def test_records_of_other_models_versions_and_failures_are_left_out() -> None:
    scores, labels = _ten()
    scores += [
        scored("tx0", 0.95, shadow("v2", 0.1), at=T0 - 5),  # an older copy: the newest wins
        scored("tx-a", 0.99, shadow("v2", 0.99), model_name="other"),
        scored("tx-b", 0.99, shadow("v2", 0.99), production_version="v0"),
        scored("tx-c", 0.5, shadow("v2", None, error="timeout: no result within 50 ms")),
        scored("tx-d", 0.5, shadow("v2", None, error="busy: its previous batch is running")),
        scored("tx-e", 0.5, shadow("v3", 0.5)),
    ]
    result = _compare(scores, labels)
    assert result.evidence.shadow_records == 10
    details = result.evidence.details
    assert details["duplicate_score_records"] == 1
    assert details["other_model_records"] == 1
    assert details["other_production_records"] == 1
    assert (details["shadow_errors_timeout"], details["shadow_errors_busy"]) == (1, 1)
    free = result.evidence.label_free
    assert free is not None
    assert free.sampled == 13  # tx-a belongs to another model
    assert free.transactions == 10
    assert (free.timeout_rate, free.busy_rate, free.error_rate) == (1 / 13, 1 / 13, 0.0)


def test_label_free_signals_from_the_first_record() -> None:
    scores, _ = _ten()
    result = _compare(scores, [], Options(as_of=T0 + 60, replicates=200))
    evidence = result.evidence
    assert evidence.challenger_value is None
    assert evidence.why_undefined.startswith("none of the 10 compared transactions is matured")
    with pytest.raises(NoEvidence, match=r"^no shadow evidence for fraud:v2: none of the 10"):
        result.require()
    free = evidence.label_free
    assert free is not None
    # Decisions: production blocks tx0, tx1; the challenger tx0, tx3; all else allow.
    assert free.agreement == pytest.approx(8 / 10)
    flips = {(f.production, f.challenger): (f.count, f.amount) for f in free.flips}
    assert flips == {
        ("block", "block"): (1, 12.5),
        ("block", "allow"): (1, 12.5),
        ("allow", "block"): (1, 12.5),
        ("allow", "allow"): (7, 87.5),
    }
    assert free.rank_correlation == pytest.approx(stats.spearmanr(PRODUCTION, CHALLENGER)[0])
    assert free.ks == pytest.approx(stats.ks_2samp(PRODUCTION, CHALLENGER).statistic)
    assert free.psi is not None
    assert free.psi > 0


def test_psi_and_ks_of_identical_and_shifted_distributions() -> None:
    rng = np.random.default_rng(3)
    base = rng.beta(1, 20, 20_000)
    assert psi(base, rng.permutation(base)) == pytest.approx(0.0, abs=1e-12)
    assert ks(base, base) == 0.0
    shifted = np.clip(base * 1.8, 0, 1)
    assert (psi(base, shifted) or 0.0) > 0.25
    assert ks(base, shifted) == pytest.approx(stats.ks_2samp(base, shifted).statistic)
    assert spearman(base, shifted) == pytest.approx(1.0)
    assert spearman(np.ones(5), base[:5]) is None


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ("no_blocks", "production blocked none of the 10 matured transactions"),
        ("hidden", "production's blocks hide the outcome of all 2 of its would-be blocks"),
        ("no_fraud", "none of the 10 matured transactions is a labeled fraud"),
        ("never", "v2 was never scored in shadow in the records read"),
    ],
)
def test_a_comparison_that_cannot_be_made_says_why(change: str, why: str) -> None:
    scores, labels = _ten()
    if change == "no_blocks":
        scores = [scored(s.transaction_id, 0.3, *s.shadows, at=s.scored_at) for s in scores]
    elif change == "hidden":  # no label on what production blocked, no exploration
        labels = [x for x in labels if x.transaction_id not in ("tx0", "tx1")]
    elif change == "no_fraud":
        labels = [label(x.transaction_id, False) for x in labels]
    else:
        scores = [scored(s.transaction_id, s.production.score, at=s.scored_at) for s in scores]
    result = _compare(scores, labels)
    assert result.evidence.challenger_value is None
    assert result.why_undefined.startswith(why)


def test_a_challenger_and_its_control_in_one_pass() -> None:
    scores = [
        scored(
            f"tx{i}",
            PRODUCTION[i],
            shadow("v2", CHALLENGER[i]),
            shadow("ctl", PRODUCTION[i]),
            at=T0 + i,
        )
        for i in range(10)
    ]
    labels = [label(f"tx{i}", i in FRAUD) for i in range(8)]
    paired = pair_many(scores, labels, ["v2", "ctl"], model_name="fraud")
    rows, sampling, production = paired["v2"]
    control_rows = paired["ctl"][0]
    assert list(control_rows.challenger_decision == BLOCK) == [True, True] + [False] * 8
    result = compare(
        rows,
        sampling,
        version="v2",
        production_version=production,
        options=LATER,
        control=("ctl", control_rows),
    )
    control = result.evidence.control
    assert control is not None
    assert control.version == "ctl"
    assert control.control_difference == pytest.approx(0.0)  # the control is production's twin
    assert control.versus_control == pytest.approx(1 / 3)
    assert (control.transactions, control.frauds) == (10, 3)
    assert control.verdict.startswith(("The challenger beats", "The challenger's difference"))
