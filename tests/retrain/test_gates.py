"""The offline gates judge paired intervals: exact verdicts on small examples, and seeded
simulations against a known truth (no services).

The simulated evaluation set: each row has a latent risk (standard normal, shifted by 2.5 for a
fraud); production scores it plus noise, the candidate plus independent noise.  With the same
noise the two models are equally good (a true difference of 0), like a control retrained with
another seed; with much more noise the candidate is clearly worse.  Four slices of ~40 frauds
each are judged: where the point-estimate gate flapped.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from registry.config import SettingsError, load_settings
from retrain.evaluation import threshold_for_rate
from retrain.evidence.intervals import Estimate
from retrain.gates import Columns, GateResult, apply_gates, corrected_bound, for_control
from retrain.settings import RetrainSettings

REPETITIONS = 100
RATE = 0.04  # both models block 4% of the rows


def _settings(**overrides: Any) -> RetrainSettings:
    values = {
        "gate_min_slice_rows": 300,
        "gate_min_slice_frauds": 20,
        "gate_replicates": 400,
        **overrides,
    }
    return load_settings(RetrainSettings, **values)


def _evaluation(columns: Columns) -> dict[str, Any]:
    """The evaluate step's summary as the gates read it (thresholds at the common rate)."""
    return {
        "models": {
            "candidate": {"threshold": threshold_for_rate(columns.candidate, RATE)},
            "production": {"threshold": threshold_for_rate(columns.production, RATE)},
        },
        "production_note": None,
    }


def _columns(
    labels: np.ndarray,
    candidate: np.ndarray,
    production: np.ndarray,
    slices: dict[str, np.ndarray],
    amounts: np.ndarray | None = None,
) -> Columns:
    return Columns(
        labels=labels.astype(np.int8),
        amounts=np.ones(len(labels)) if amounts is None else amounts,
        candidate=candidate,
        production=production,
        candidate_blocks=candidate >= threshold_for_rate(candidate, RATE),
        production_blocks=production >= threshold_for_rate(production, RATE),
        slices=slices,
    )


def _simulated(seed: int, candidate_noise: float, n: int = 4000) -> Columns:
    rng = np.random.default_rng(seed)
    fraud = rng.random(n) < 0.04
    latent = rng.normal(size=n) + 2.5 * fraud
    production = latent + 0.8 * rng.normal(size=n)
    candidate = latent + candidate_noise * rng.normal(size=n)
    category = rng.integers(0, 4, n)
    slices = {f"category=c{i}": category == i for i in range(4)}
    amounts = np.exp(rng.normal(3.5, 1.0, n))
    return _columns(fraud, candidate, production, slices, amounts)


def _gate(columns: Columns, **overrides: Any) -> GateResult:
    return apply_gates(_evaluation(columns), columns, _settings(**overrides))


def _point_gate(result: GateResult, tolerance: float = 0.02) -> bool:
    """The gate this one replaced: every judged scope within the tolerance on point values."""
    return all(
        c.candidate is not None
        and c.production is not None
        and c.candidate >= c.production - tolerance
        for c in result.checks
        if c.judged
    )


def test_a_candidate_as_good_as_production_passes_where_the_point_gate_flapped() -> None:
    results = [_gate(_simulated(seed, candidate_noise=0.8)) for seed in range(REPETITIONS)]
    assert all(len([c for c in r.checks if c.judged]) == 5 for r in results)
    frauds = [c.frauds for r in results for c in r.checks if c.scope != "overall"]
    assert 25 < float(np.mean(frauds)) < 55  # small slices: ~40 frauds each
    passed = sum(r.passed for r in results)
    flapped = sum(not _point_gate(r) for r in results)
    assert passed >= 95, f"an equal candidate passed the gate in {passed} of 100"
    assert flapped >= 50, f"the point-estimate gate rejected it in only {flapped} of 100"
    differences = [r.checks[0].difference or 0.0 for r in results]
    assert abs(float(np.mean(differences))) < 0.01  # truly equal


def test_a_clearly_worse_candidate_is_rejected() -> None:
    results = [_gate(_simulated(500 + seed, candidate_noise=2.0)) for seed in range(30)]
    differences = [r.checks[0].difference or 0.0 for r in results]
    assert float(np.mean(differences)) < -0.2  # recall about 0.24 below production
    rejected = sum(not r.passed for r in results)
    assert rejected >= 29, f"a clearly worse candidate was rejected in {rejected} of 30"
    assert all(
        r.reason.startswith("gate failed (tolerance 0.02): ") for r in results if not r.passed
    )


def test_the_reason_names_each_failing_scope_with_its_interval_and_bound() -> None:
    labels = np.tile([1, 0, 0, 0, 0, 0, 0, 0, 0, 0], 200)  # 2000 rows, 200 frauds
    production = np.where(labels == 1, 0.9, 0.1)  # catches every fraud
    candidate = production.copy()
    candidate[np.flatnonzero(labels)[::2]] = 0.05  # misses every other fraud
    rows = np.arange(2000)
    slices = {"country=DE": rows < 1000, "country=FR": rows >= 1900}
    result = _gate(_columns(labels, candidate, production, slices), gate_min_slice_frauds=50)
    overall, de, fr = result.checks
    assert (overall.scope, de.scope, fr.scope) == ("overall", "country=DE", "country=FR")
    assert (overall.candidate, overall.production, overall.difference) == (0.5, 1.0, -0.5)
    assert overall.low is not None
    assert overall.high is not None
    assert overall.bound is not None
    assert overall.low < -0.5 < overall.high < overall.bound < -0.02
    assert (fr.judged, fr.passed, fr.rows, fr.frauds) == (False, True, 100, 10)
    assert fr.note == "not judged: 100 rows, 10 frauds (a slice needs 300 rows and 50 frauds)"
    assert fr.difference == -0.5
    assert fr.high is not None

    def shown(c: Any) -> str:
        return (
            f"{c.scope}: confidently worse: recall {c.candidate:.3f} vs production "
            f"{c.production:.3f}, difference {c.difference:+.3f} (95% [{c.low:+.3f}, "
            f"{c.high:+.3f}]; bound at 98.75% {c.bound:+.3f})"
        )

    assert not result.passed
    assert result.reason == f"gate failed (tolerance 0.02): {shown(overall)}; {shown(de)}"
    assert result.as_dict()["checks"][2]["judged"] is False


def test_the_gate_passes_and_counts_what_it_judged() -> None:
    columns = _simulated(7, candidate_noise=0.8)
    result = _gate(columns, gate_min_slice_frauds=45)
    judged = [c.scope for c in result.checks if c.judged]
    assert result.passed
    assert result.reason == (
        "recall not confidently worse than production by more than 0.02: overall and "
        f"{len(judged) - 1} slices judged, {5 - len(judged)} too small to judge"
    )


@pytest.mark.parametrize("metric", ["precision", "money_saved_share", "roc_auc"])
def test_every_gate_metric_has_a_paired_interval(metric: str) -> None:
    result = _gate(_simulated(3, candidate_noise=0.8), gate_metric=metric)
    overall = result.checks[0]
    assert overall.metric == metric
    assert overall.low is not None
    assert overall.high is not None
    assert overall.low < (overall.difference or 0.0) < overall.high


def test_a_metric_undefined_in_a_scope_is_reported_and_not_judged() -> None:
    labels = np.tile([1, 0, 0, 0, 0, 0, 0, 0, 0, 0], 100)
    production = np.where(labels == 1, 0.9, 0.1)
    candidate = production.copy()
    columns = _columns(labels, candidate, production, {})
    columns = replace(columns, candidate_blocks=np.zeros(1000, dtype=bool))
    result = _gate(columns, gate_metric="precision")
    [overall] = result.checks
    assert overall.candidate is None
    assert (overall.passed, overall.judged) == (True, True)
    assert overall.note == "not judged: precision or its interval is undefined on these 1000 rows"


def test_without_production_the_gates_pass_and_say_why() -> None:
    evaluation = {"models": {"candidate": {"threshold": 0.5}}, "production_note": None}
    result = apply_gates(evaluation, None, _settings())
    assert result.passed
    assert result.reason == "no production model: candidate evaluated alone, no comparison gate"
    assert result.checks == ()


def test_the_bound_widens_with_the_number_of_scopes() -> None:
    estimate = Estimate(point=-0.1, low=-0.2, high=0.0)
    assert corrected_bound(estimate, 0.05, 1) == pytest.approx(0.0)
    assert corrected_bound(estimate, 0.05, 5) == pytest.approx(
        -0.1 + 0.1 * 2.5758 / 1.9600, abs=1e-4
    )
    assert corrected_bound(Estimate(point=-0.1), 0.05, 5) is None
    assert corrected_bound(None, 0.05, 5) is None


def test_pr_auc_is_not_a_gate_metric() -> None:
    with pytest.raises(SettingsError) as caught:
        _settings(gate_metric="pr_auc")
    assert "SHADOWLINE_GATE_METRIC='pr_auc'" in str(caught.value)


def test_a_controls_verdict_is_reported_and_never_applied() -> None:
    # A control is shadowed to measure the noise floor: keeping only those that pass would keep
    # the lucky ones, so the verdict is kept beside it and it goes to shadow either way.
    worse = _gate(_simulated(500, candidate_noise=2.0))
    assert not worse.passed
    control = for_control(worse)
    assert (control.passed, control.applied, control.checks) == (True, False, worse.checks)
    assert control.reason == (
        f"not applied to a control, which measures the noise floor (would fail: {worse.reason})"
    )
    assert control.as_dict()["applied"] is False
    assert worse.as_dict()["applied"] is True
    equal = _gate(_simulated(0, candidate_noise=0.8))
    assert equal.passed
    assert for_control(equal).reason.endswith(f"(would pass: {equal.reason})")
