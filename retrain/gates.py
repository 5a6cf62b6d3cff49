"""The ``gates`` step: may this candidate go to shadow?  Only a confidently worse one may not.

What is compared.  Both models block at the same rate (production's) on the same evaluation
rows, each at its own threshold for that rate (:mod:`retrain.evaluation`).  The gate metric
(``gate_metric``: recall at that rate by default; also ``precision``, ``money_saved_share``,
``roc_auc``) is compared as the paired difference, candidate minus production, overall and in
every slice, with its interval from the paired Poisson bootstrap the shadow evidence uses
(:mod:`retrain.evidence.intervals`: every row weighted 1, each model's blocks fixed; ROC-AUC by
DeLong).  PR-AUC has no paired interval there, so it is not a gate metric.

When a scope fails.  The gate fails only when the interval says the candidate is worse than
production by more than ``gate_tolerance``: the upper bound of the difference is below
``-gate_tolerance``.  This is deliberately the mirror of the approval policy, not a copy of it.
Approval decides what serves customers, so the challenger must prove it is not worse
(non-inferiority: the lower bound above ``-tolerance``) and lack of evidence refuses.  The gate
only decides whether a candidate may be watched in shadow, where it costs a share of a sidecar
and nothing else; a candidate that has not yet proven itself must get into shadow to gather that
proof, so the gate rejects only what is confidently bad.  The point-estimate gate this replaces
did neither: in a slice with a few dozen frauds one fraud changing side moves recall by more
than the tolerance, so a candidate as good as production was rejected on noise (the demo's gate
flapped).

Several scopes.  Judging the overall value and k - 1 slices is k chances to reject a good
candidate on noise, so each bound is taken at the one-sided level ``gate_alpha / 2 / k``
(Bonferroni): a candidate whose true difference is ``-gate_tolerance`` everywhere is rejected in
at most ``gate_alpha / 2`` of runs, however many slices there are, and one truly equal to
production almost never.  The bound is the bootstrap's upper half-width at ``1 - gate_alpha``,
scaled by the ratio of the normal quantiles at the two levels (``gate_replicates`` replicates
could not resolve a 0.1% tail; for ROC-AUC, whose DeLong interval is normal, this is exact).

Slices with fewer than ``gate_min_slice_rows`` rows or ``gate_min_slice_frauds`` frauds are
reported with their interval and not judged.  Without a production model there is nothing to
compare against and the gates pass, saying so.

Controls (:mod:`retrain.control`) are compared and reported, never stopped
(:func:`for_control`).  A control is production's recipe with another seed: how far it lands
from production *is* the noise floor it is shadowed to measure, and it is never promoted.  With
bagging on, retraining with another seed really moves recall by more than the tolerance: at the
demo's size (50 trees, ~80 frauds in the evaluation set) the seed-to-seed spread of true recall
is 0.035 overall and 0.04-0.05 in a slice, so about a third of controls were truly worse than
production somewhere by more than 0.02 and the gate caught them (13 of 36 on the demo's dates,
every one truly worse on a sample ten to thirty times larger; 0 of 120 identical candidates
rejected).  Keeping only the controls that pass would keep the lucky ones: the noise floor
would look smaller than it is, and every challenger's lead larger.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from retrain.evidence import intervals
from retrain.evidence.intervals import Cohort, Estimate, Model
from retrain.settings import RetrainSettings

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
_SHOWN = 3
CANDIDATE, PRODUCTION = "candidate", "production"
# gate_metric (the evaluation's name) -> the same metric in retrain.evidence.intervals.
INTERVAL_METRICS: Mapping[str, str] = {
    "recall": intervals.PRIMARY,
    "precision": "precision_at_block_rate",
    "money_saved_share": "money_caught_at_block_rate",
    "roc_auc": "roc_auc",
}


@dataclass(frozen=True)
class Columns:
    """The evaluation rows both models scored: 0/1 labels, amounts, each model's score and
    whether it blocks the row at the common block rate, and the slices as row masks."""

    labels: npt.NDArray[np.int8]
    amounts: Floats
    candidate: Floats
    production: Floats
    candidate_blocks: Bools
    production_blocks: Bools
    slices: Mapping[str, Bools]


@dataclass(frozen=True)
class Check:
    """One scope (``overall`` or a slice): both values, the paired difference with its 95%
    interval, the Bonferroni-corrected upper ``bound``, and whether it was ``judged``."""

    scope: str
    metric: str
    candidate: float | None
    production: float | None
    passed: bool
    note: str = ""
    difference: float | None = None
    low: float | None = None
    high: float | None = None
    bound: float | None = None
    judged: bool = True
    rows: int = 0
    frauds: int = 0


@dataclass(frozen=True)
class GateResult:
    """The verdict: ``passed`` lets the candidate into shadow.  ``applied`` is False for a
    control, whose checks are reported and never stop it (:func:`for_control`)."""

    passed: bool
    reason: str
    checks: tuple[Check, ...]
    applied: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reason": self.reason,
            "checks": [asdict(c) for c in self.checks],
            "applied": self.applied,
        }


def for_control(result: GateResult) -> GateResult:
    """``result`` for a control: the same checks, reported, and the control goes to shadow
    whatever they say (module docstring)."""
    verdict = "would pass" if result.passed else "would fail"
    reason = (
        f"not applied to a control, which measures the noise floor ({verdict}: {result.reason})"
    )
    return replace(result, passed=True, reason=reason, applied=False)


def _paired(
    columns: Columns, mask: Bools, metric: str, settings: RetrainSettings, seed: int
) -> tuple[Estimate | None, Estimate | None, Estimate | None]:
    """Candidate, production and their difference on the rows of ``mask``."""
    cand_blocks, prod_blocks = columns.candidate_blocks[mask], columns.production_blocks[mask]
    cohort = Cohort(
        y=columns.labels[mask].astype(np.int8),
        weight=np.ones(int(mask.sum())),
        volume_blocks=prod_blocks,
        amount=columns.amounts[mask],
    )
    models = {
        CANDIDATE: Model(
            score=columns.candidate[mask],
            own_block=cand_blocks,
            blocks=cand_blocks.astype(np.float64),
        ),
        PRODUCTION: Model(
            score=columns.production[mask],
            own_block=prod_blocks,
            blocks=prod_blocks.astype(np.float64),
        ),
    }
    found = intervals.estimate(
        cohort,
        models,
        [(CANDIDATE, PRODUCTION)],
        replicates=settings.gate_replicates,
        seed=seed,
        alpha=settings.gate_alpha,
    )
    name = INTERVAL_METRICS[metric]
    return (
        found.values[CANDIDATE].get(name),
        found.values[PRODUCTION].get(name),
        found.differences[(CANDIDATE, PRODUCTION)].get(name),
    )


def corrected_bound(difference: Estimate | None, alpha: float, scopes: int) -> float | None:
    """The upper bound of ``difference`` at the one-sided level ``alpha / 2 / scopes``, from
    its ``1 - alpha`` interval (see the module docstring); None without an interval."""
    if difference is None or difference.point is None or difference.high is None:
        return None
    normal = NormalDist()
    widen = normal.inv_cdf(1 - alpha / 2 / max(1, scopes)) / normal.inv_cdf(1 - alpha / 2)
    return difference.point + (difference.high - difference.point) * widen


def _check(
    scope: str,
    mask: Bools,
    columns: Columns,
    settings: RetrainSettings,
    judged: bool,
    scopes: int,
) -> Check:
    metric, tolerance = settings.gate_metric, settings.gate_tolerance
    rows, frauds = int(mask.sum()), int(columns.labels[mask].sum())
    seed = zlib.crc32(scope.encode())  # stable: a re-run of the step gives the same verdict
    cand, prod, diff = _paired(columns, mask, metric, settings, seed)
    bound = corrected_bound(diff, settings.gate_alpha, scopes)
    level = 1 - settings.gate_alpha / 2 / max(1, scopes)
    values: dict[str, Any] = {
        "scope": scope,
        "metric": metric,
        "candidate": None if cand is None else cand.point,
        "production": None if prod is None else prod.point,
        "difference": None if diff is None else diff.point,
        "low": None if diff is None else diff.low,
        "high": None if diff is None else diff.high,
        "bound": bound,
        "judged": judged,
        "rows": rows,
        "frauds": frauds,
    }
    if not judged:
        note = (
            f"not judged: {rows} rows, {frauds} frauds (a slice needs "
            f"{settings.gate_min_slice_rows} rows and {settings.gate_min_slice_frauds} frauds)"
        )
        return Check(passed=True, note=note, **values)
    if bound is None or values["candidate"] is None or values["production"] is None:
        note = f"not judged: {metric} or its interval is undefined on these {rows} rows"
        return Check(passed=True, note=note, **values)
    shown = (
        f"{metric} {values['candidate']:.3f} vs production {values['production']:.3f}, "
        f"difference {values['difference']:+.3f} (95% [{values['low']:+.3f}, "
        f"{values['high']:+.3f}]; bound at {level:.2%} {bound:+.3f})"
    )
    if bound < -tolerance:
        return Check(passed=False, note=f"confidently worse: {shown}", **values)
    return Check(passed=True, note=shown, **values)


def apply_gates(
    evaluation: dict[str, Any], columns: Columns | None, settings: RetrainSettings
) -> GateResult:
    """Judge the candidate against production (see the module docstring).  ``evaluation`` is
    the evaluate step's summary, ``columns`` its rows (None without a production model)."""
    if evaluation["models"].get("production") is None or columns is None:
        note = evaluation.get("production_note") or "no production model"
        return GateResult(
            passed=True, reason=f"{note}: candidate evaluated alone, no comparison gate", checks=()
        )
    metric, tolerance = settings.gate_metric, settings.gate_tolerance
    big = {
        name: bool(
            mask.sum() >= settings.gate_min_slice_rows
            and columns.labels[mask].sum() >= settings.gate_min_slice_frauds
        )
        for name, mask in sorted(columns.slices.items())
        if mask.any()
    }
    scopes = 1 + sum(big.values())
    everything = np.ones(len(columns.labels), dtype=np.bool_)
    checks = [_check("overall", everything, columns, settings, True, scopes)]
    checks += [
        _check(name, columns.slices[name], columns, settings, judged, scopes)
        for name, judged in big.items()
    ]
    failed = [c for c in checks if not c.passed]
    if not failed:
        return GateResult(
            passed=True,
            reason=f"{metric} not confidently worse than production by more than {tolerance:g}: "
            f"overall and {scopes - 1} slices judged, {len(big) - scopes + 1} too small to judge",
            checks=tuple(checks),
        )
    shown = "; ".join(f"{c.scope}: {c.note}" for c in failed[:_SHOWN])
    more = f"; and {len(failed) - _SHOWN} more" if len(failed) > _SHOWN else ""
    return GateResult(
        passed=False,
        reason=f"gate failed (tolerance {tolerance:g}): {shown}{more}",
        checks=tuple(checks),
    )
