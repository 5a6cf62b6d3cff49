"""The statistics against a known truth: seeded repetitions of simulated traffic.

Each repetition draws a fresh sample from a world whose population values are known in closed
form (``simulation.World``), runs the real analysis on it, and checks what the approval policy
would do.  These are the guarantees the evidence claims:

* the 95% interval of the difference covers the true difference in at least 90 of 100
  repetitions, and a truly better challenger is approved once enough frauds have matured;
* a challenger truly worse by the tolerance is approved in at most 5 of 100 repetitions, and
  with too few matured frauds the policy refuses for lack of evidence;
* with exploration, the inverse-propensity-weighted recall of each model covers the truth,
  while the labeled-only estimate is far off;
* the label-delay curve recovers the delay distribution from right-truncated labels.

No services; about a minute in all.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from registry.policy import ApprovalPolicy
from retrain.evidence.comparison import Comparison, Options, compare
from retrain.evidence.maturity import delay_curve, maturity
from tests.retrain.evidence.simulation import AS_OF, DAY, World

REPETITIONS = 100
TRANSACTIONS = 6000  # about 480 frauds a repetition
WORLD = World(fraud_rate=0.08)
POLICY = ApprovalPolicy(min_shadow_records=1000, min_matured_frauds=50, tolerance=0.02)


def _analyse(
    world: World,
    seed: int,
    n: int = TRANSACTIONS,
    exploration: float = 0.0,
    label_blocked: float = 1.0,
) -> Comparison:
    rows, sampling = world.draw(
        np.random.default_rng(seed),
        n,
        exploration=exploration,
        label_blocked=label_blocked,
        delay_days=1.0,
    )
    options = Options(as_of=AS_OF, seed=seed)
    return compare(rows, sampling, version="v2", production_version="v1", options=options)


def _covers(low: float | None, high: float | None, truth: float) -> bool:
    return low is not None and high is not None and low <= truth <= high


def test_the_difference_is_covered_and_a_better_challenger_is_approved() -> None:
    world = WORLD
    truth = world.truth().difference
    assert 0.04 < truth < 0.07  # truly better, by a known margin
    results = [_analyse(world, seed) for seed in range(REPETITIONS)]
    covered = 0
    for result in results:
        ci = result.evidence.difference_ci
        covered += ci is not None and _covers(ci.low, ci.high, truth)
    approved = sum(POLICY.violations(r.evidence, "v1") == [] for r in results)
    assert covered >= 90, f"covered the true difference {truth:.4f} in {covered} of 100"
    assert approved >= 90, f"approved a truly better challenger in {approved} of 100"


def test_a_challenger_worse_by_the_tolerance_is_rarely_approved() -> None:
    world = WORLD.with_difference(-POLICY.tolerance)
    assert math.isclose(world.truth().difference, -0.02, abs_tol=1e-6)
    approved = sum(
        POLICY.violations(_analyse(world, 1000 + seed).evidence, "v1") == []
        for seed in range(REPETITIONS)
    )
    assert approved <= 5, f"a worse challenger was approved in {approved} of 100"


def test_too_few_matured_frauds_refuse_for_lack_of_evidence() -> None:
    better = WORLD.with_difference(0.15)  # far better: the point value would pass
    evidence = _analyse(better, 7, n=400).evidence
    assert evidence.matured_frauds < POLICY.min_matured_frauds
    assert evidence.difference is not None
    assert evidence.difference > 0.05
    policy = POLICY.model_copy(update={"min_shadow_records": 100})
    assert policy.violations(evidence, "v1")[0].startswith(
        f"rule min_matured_frauds: {evidence.matured_frauds} labeled frauds"
    )


def test_exploration_corrects_what_blocks_hide_and_labeled_only_is_biased() -> None:
    world = WORLD
    truth = world.truth()
    results = [
        _analyse(world, 2000 + seed, exploration=0.3, label_blocked=0.0) for seed in range(60)
    ]
    covered = {"challenger": 0, "production": 0}
    weighted: list[float] = []
    naive: list[float] = []
    for result in results:
        assert result.evidence.estimator == "ipw"
        primary = result.evidence.metric_named("fraud_caught_at_block_rate")
        assert primary is not None
        for who, true, ci in (
            ("challenger", truth.challenger, primary.challenger_ci),
            ("production", truth.production, primary.production_ci),
        ):
            covered[who] += ci is not None and _covers(ci.low, ci.high, true)
        weighted.append(primary.production or 0.0)
        naive.append(result.evidence.details["naive_production_fraud_caught_at_block_rate"])
    assert min(covered.values()) >= 54, f"IPW intervals covered the truth {covered} of 60"
    assert abs(float(np.mean(weighted)) - truth.production) < 0.02
    # Production's unexplored blocks are invisible: labeled-only recall is far too low.
    assert float(np.mean(naive)) < truth.production - 0.2


def _lognormal_world(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Fraud labels of transactions scored over 120 days, delays log-normal (median 10
    days): only those arrived by AS_OF are seen."""
    rng = np.random.default_rng(seed)
    scored = AS_OF - rng.uniform(0, 120, n) * DAY
    arrive = scored + np.exp(rng.normal(math.log(10.0), 1.0, n)) * DAY
    seen = arrive <= AS_OF
    return scored[seen], arrive[seen]


def test_the_label_delay_curve_corrects_for_truncation() -> None:
    true_q90 = 10.0 * math.exp(NormalDist().inv_cdf(0.9))  # 36 days
    estimated, naive = [], []
    for seed in range(20):
        scored, arrived = _lognormal_world(seed, 3000)
        curve = delay_curve(scored, arrived, AS_OF)
        estimated.append(curve.quantile(0.9) / DAY)
        naive.append(float(np.quantile(arrived - scored, 0.9)) / DAY)
    assert abs(np.median(estimated) / true_q90 - 1) < 0.1
    assert np.median(naive) / true_q90 < 0.85  # young transactions show only fast labels


def test_expected_share_of_labels_in_matches_the_truth() -> None:
    scored, arrived = _lognormal_world(99, 20_000)
    curve = delay_curve(scored, arrived, AS_OF)
    ages = np.array([5.0, 10.0, 36.0, 60.0]) * DAY
    truth = [NormalDist().cdf(math.log(a / DAY / 10.0)) for a in ages]
    assert np.allclose(curve.share(ages), truth, atol=0.04)
    found = maturity(curve, ages, quantile=0.9, window_s=None, default_window_s=DAY, min_delays=20)
    assert found.window_from == "curve"
    assert abs(found.window_s / DAY - 36.0) < 4.0
    assert found.expected_share_matured is not None
    assert found.expected_share_matured > 0.9  # the two ages past the window
