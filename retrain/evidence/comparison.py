"""Shadow analysis: a challenger against production, as :class:`ShadowEvidence`.

Pure logic: :func:`compare` takes the paired columns (:mod:`retrain.evidence.frame`, built
from Kafka records or from the Parquet archive) and returns a :class:`Comparison`.  The steps:

1. label-free signals over every paired transaction (:mod:`retrain.evidence.signals`);
2. label maturity: the label-delay curve from the fraud labels seen, the maturity window, the
   expected share of labels in (:mod:`retrain.evidence.maturity`); labels dated after
   ``as_of`` are not known yet and left out;
3. the matured cohort: outcomes and inverse-propensity weights for what production's blocks
   hide (:mod:`retrain.evidence.ipw`);
4. every labeled metric for both models with 95% intervals and the paired difference, and the
   decision bound corrected for looks (:mod:`retrain.evidence.intervals`);
5. with a control shadow, the same for the control and the challenger minus the control: the
   noise floor a difference has to clear.

When the labeled comparison cannot be made (nothing paired, nothing matured, production blocked
nothing, its blocks hide every outcome, no fraud among the matured), the evidence still holds
the label-free signals and the maturity, ``challenger_value`` is None and ``why_undefined``
says why; the approval policy then refuses for lack of evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from registry.evidence import (
    PRIMARY_METRIC,
    ControlComparison,
    Interval,
    LabelFree,
    Maturity,
    MetricEstimate,
    ShadowEvidence,
    Source,
)
from retrain.errors import NoEvidence
from retrain.evidence import intervals, ipw, maturity, signals
from retrain.evidence.frame import BLOCK, FRAUD, NO_LABEL, Paired, Sampling
from retrain.evidence.intervals import Cohort, Estimates, Model

DAY = 86_400.0
CHALLENGER, PRODUCTION, CONTROL = "challenger", "production", "control"


@dataclass(frozen=True)
class Options:
    """How to analyse: at which time, with which maturity rules and bootstrap."""

    as_of: float  # unix seconds: the analysis sees labels up to then
    quantile: float = 0.9  # maturity window: the delay by which this share of labels is in
    window_s: float | None = None  # a fixed maturity window instead of the curve's
    default_window_s: float = 30 * DAY  # when too few fraud labels to trust the curve
    min_delays: int = 20
    replicates: int = 1000
    seed: int = 0
    alpha: float = 0.05
    looks: int = 1  # this analysis is look number `looks` (intervals.py: Bonferroni)
    source: Source = "live"


@dataclass(frozen=True)
class Comparison:
    """The analysis of one challenger; ``evidence`` is what the registry stores."""

    model_name: str | None
    version: str
    production_version: str | None
    rows: Paired
    sampling: Sampling
    evidence: ShadowEvidence
    labels_after: tuple[str, ...] = ()  # labels dated after as_of: not counted
    estimates: Estimates | None = None
    details: dict[str, float] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.model_name}:{self.version}" if self.model_name else self.version

    @property
    def why_undefined(self) -> str:
        return self.evidence.why_undefined

    def require(self) -> ShadowEvidence:
        """The evidence, or :class:`NoEvidence` when it holds no labeled metric."""
        if self.evidence.challenger_value is None:
            raise NoEvidence(self.ref, self.why_undefined)
        return self.evidence


def _hide_later_labels(rows: Paired, as_of: float) -> tuple[Paired, tuple[str, ...]]:
    """``rows`` with the labels dated after ``as_of`` removed (not known at that time)."""
    later = np.isfinite(rows.label_time) & (rows.label_time > as_of)
    if not later.any():
        return rows, ()
    ids = tuple(np.asarray(rows.transaction_id, dtype=object)[later].tolist())
    return (
        replace(
            rows,
            label=np.where(later, NO_LABEL, rows.label).astype(np.int8),
            label_time=np.where(later, np.nan, rows.label_time),
        ),
        ids,
    )


def _window(rows: Paired) -> tuple[datetime | None, datetime | None]:
    if not len(rows):
        return None, None
    return (
        datetime.fromtimestamp(float(rows.scored_at.min()), UTC),
        datetime.fromtimestamp(float(rows.scored_at.max()), UTC),
    )


def _sampling_details(sampling: Sampling) -> dict[str, float]:
    details = {
        "scores_read": sampling.scores_read,
        "challenger_sampled": sampling.sampled,
        "other_production_records": sampling.other_production,
        "other_model_records": sampling.other_model,
        "duplicate_score_records": sampling.duplicates,
        "labels_read": sampling.labels_read,
        "labels_superseded": sampling.labels_superseded,
        "labels_without_score": sampling.labels_without_score,
        "labels_before_score": len(sampling.labels_before_score),
    }
    details.update({f"shadow_errors_{kind}": n for kind, n in sampling.errors.items()})
    return {key: float(value) for key, value in details.items()}


def _why_empty(version: str, sampling: Sampling, production: str | None) -> str:
    if sampling.sampled == 0:
        return f"{version} was never scored in shadow in the records read"
    failed = sum(sampling.errors.values())
    if failed == sampling.sampled:
        return f"{version} failed on every one of the {failed} transactions it was sampled on"
    return f"none of the transactions {version} scored was answered by production {production}"


def _age(seconds: float) -> str:
    if seconds >= 2 * DAY:
        return f"{seconds / DAY:.1f} days"
    if seconds >= 7200:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds:.0f} s"


def compare(
    rows: Paired,
    sampling: Sampling,
    *,
    version: str,
    production_version: str | None,
    options: Options,
    model_name: str | None = None,
    control: tuple[str, Paired] | None = None,
) -> Comparison:
    """Compare challenger ``version`` with production over ``rows`` (see the module
    docstring); ``control`` is a control shadow's version and its paired rows."""
    rows, hidden = _hide_later_labels(rows, options.as_of)
    labels_after = tuple(sampling.labels_after) + hidden
    delays = np.array(
        [(s, t) for s, t in sampling.fraud_delays if t <= options.as_of], dtype=np.float64
    ).reshape(-1, 2)
    curve = maturity.delay_curve(delays[:, 0], delays[:, 1], options.as_of)
    ages = options.as_of - rows.scored_at
    matured_info = maturity.maturity(
        curve,
        ages,
        quantile=options.quantile,
        window_s=options.window_s,
        default_window_s=options.default_window_s,
        min_delays=options.min_delays,
    )
    start, end = _window(rows)
    base = ShadowEvidence(
        source=options.source,
        production_version=production_version,
        shadow_records=len(rows),
        label_free=signals.label_free(rows, sampling),
        maturity=matured_info,
        window_start=start,
        window_end=end,
        details=_sampling_details(sampling),
    )
    result = Comparison(
        model_name=model_name,
        version=version,
        production_version=production_version,
        rows=rows,
        sampling=sampling,
        evidence=base,
        labels_after=labels_after,
    )
    if not len(rows):
        return _undefined(result, _why_empty(version, sampling, production_version))
    matured = ages >= matured_info.window_s
    if not matured.any():
        return _undefined(
            result,
            f"none of the {len(rows)} compared transactions is matured yet: the oldest is "
            f"{_age(float(ages.max()))} old and the maturity window is "
            f"{_age(matured_info.window_s)} ({matured_info.window_from})",
        )
    return _labeled(result, rows.take(matured), options, control)


def _undefined(result: Comparison, why: str) -> Comparison:
    evidence = result.evidence.model_copy(update={"why_undefined": why})
    return replace(result, evidence=evidence)


def _cohort(rows: Paired) -> tuple[Cohort, ipw.Observation]:
    seen = ipw.observe(rows)
    amount = rows.amount if np.isfinite(rows.amount).any() else None
    cohort = Cohort(
        y=seen.y,
        weight=seen.weight,
        volume_blocks=rows.production_decision == BLOCK,
        amount=amount,
    )
    return cohort, seen


def _models(rows: Paired) -> dict[str, Model]:
    blocks = rows.production_decision == BLOCK
    return {
        CHALLENGER: Model(score=rows.challenger_score, own_block=rows.challenger_decision == BLOCK),
        PRODUCTION: Model(
            score=rows.production_score, own_block=blocks, blocks=blocks.astype(np.float64)
        ),
    }


def _labeled(
    result: Comparison, matured: Paired, options: Options, control: tuple[str, Paired] | None
) -> Comparison:
    cohort, seen = _cohort(matured)
    frauds = int(((cohort.y == FRAUD) & cohort.observed).sum())
    counts = {
        "matured_records": len(matured),
        "labeled_records": int(cohort.observed.sum()),
        "matured_frauds": frauds,
        "explored_records": seen.explored,
        "estimator": seen.estimator,
    }
    evidence = result.evidence.model_copy(update=counts)
    result = replace(result, evidence=evidence)
    n = len(matured)
    if seen.would_block == 0:
        return _undefined(
            result,
            f"production blocked none of the {n} matured transactions: there is no "
            "block volume to compare at",
        )
    if seen.observed_blocks == 0:
        return _undefined(
            result,
            f"production's blocks hide the outcome of all {seen.would_block} of its "
            "would-be blocks among the matured transactions: turn on exploration "
            "(SHADOWLINE_EXPLORATION_SHARE) or label a random sample of blocked transactions",
        )
    if frauds == 0:
        return _undefined(result, f"none of the {n} matured transactions is a labeled fraud")
    replicates = intervals.replicates_for(options.looks, options.alpha, options.replicates)
    estimates = intervals.estimate(
        cohort,
        _models(matured),
        [(CHALLENGER, PRODUCTION)],
        replicates=replicates,
        seed=options.seed,
        alpha=options.alpha,
        looks=options.looks,
    )
    details = dict(result.evidence.details)
    details.update(_naive(matured, seen))
    details.update(
        {
            "observed_would_be_blocks": seen.observed_blocks,
            "labeled_block_share": seen.labeled_share,
        }
    )
    evidence = _evidence(result.evidence, estimates, frauds, n, options, details)
    if control is not None:
        evidence = evidence.model_copy(
            update={"control": _control(result.rows, control, _matured_window(result), options)}
        )
    return replace(result, evidence=evidence, estimates=estimates, details=details)


def _matured_window(result: Comparison) -> float:
    maturity_info = result.evidence.maturity
    return maturity_info.window_s if maturity_info is not None else 0.0


def _naive(rows: Paired, seen: ipw.Observation) -> dict[str, float]:
    """What the labeled-only comparison (no weights) would say: shown beside the weighted
    one so the bias production's blocks cause is visible."""
    naive = Cohort(
        y=seen.y, weight=seen.naive, volume_blocks=rows.production_decision == BLOCK, amount=None
    )
    points = intervals.estimate(naive, _models(rows), [], replicates=0, seed=0)
    out = {}
    for model in (CHALLENGER, PRODUCTION):
        value = points.values[model][PRIMARY_METRIC].point
        if value is not None:
            out[f"naive_{model}_{PRIMARY_METRIC}"] = value
    return out


def _interval(low: float | None, high: float | None, level: float) -> Interval | None:
    if low is None or high is None:
        return None
    return Interval(low=low, high=high, level=level)


def _evidence(
    evidence: ShadowEvidence,
    estimates: Estimates,
    frauds: int,
    matured: int,
    options: Options,
    details: dict[str, float],
) -> ShadowEvidence:
    level = 1 - options.alpha
    metrics = []
    for name, higher in intervals.METRICS:
        challenger = estimates.values[CHALLENGER].get(name)
        production = estimates.values[PRODUCTION].get(name)
        difference = estimates.differences[(CHALLENGER, PRODUCTION)].get(name)
        if challenger is None or production is None or difference is None:
            continue  # e.g. money without an amount field
        metrics.append(
            MetricEstimate(
                name=name,
                challenger=challenger.point,
                production=production.point,
                difference=difference.point,
                challenger_ci=_interval(challenger.low, challenger.high, level),
                production_ci=_interval(production.low, production.high, level),
                difference_ci=_interval(difference.low, difference.high, level),
                higher_is_better=higher,
                frauds=frauds,
                transactions=matured,
            )
        )
    primary = next(m for m in metrics if m.name == PRIMARY_METRIC)
    return evidence.model_copy(
        update={
            "metric": PRIMARY_METRIC,
            "challenger_value": primary.challenger,
            "production_value": primary.production,
            "difference": primary.difference,
            "difference_ci": primary.difference_ci,
            "decision_low": estimates.decision_low,
            "decision_level": estimates.decision_level,
            "looks": options.looks,
            "metrics": tuple(metrics),
            "details": {k: float(v) for k, v in details.items()},
        }
    )


def _control(
    rows: Paired, control: tuple[str, Paired], window_s: float, options: Options
) -> ControlComparison:
    """Control and challenger on the transactions both scored (matured ones)."""
    version, other = control
    position = {tx: i for i, tx in enumerate(other.transaction_id)}
    mine = [i for i, tx in enumerate(rows.transaction_id) if tx in position]
    theirs = [position[rows.transaction_id[i]] for i in mine]
    both = rows.take(np.array(mine, dtype=np.intp))
    matured = (options.as_of - both.scored_at) >= window_s
    common = both.take(matured)
    control_score = other.challenger_score[np.array(theirs, dtype=np.intp)][matured]
    control_block = other.challenger_decision[np.array(theirs, dtype=np.intp)][matured] == BLOCK
    cohort, seen = _cohort(common)
    frauds = int(((cohort.y == FRAUD) & cohort.observed).sum())
    empty = ControlComparison(version=version, control_difference=None, transactions=len(common))
    if frauds == 0 or seen.observed_blocks == 0 or seen.would_block == 0:
        return empty.model_copy(
            update={
                "frauds": frauds,
                "verdict": f"control {version}: too little labeled "
                "traffic in common with the challenger to measure the noise floor",
            }
        )
    models = _models(common)
    models[CONTROL] = Model(score=control_score, own_block=control_block)
    estimates = intervals.estimate(
        cohort,
        models,
        [(CONTROL, PRODUCTION), (CHALLENGER, CONTROL)],
        replicates=options.replicates,
        seed=options.seed + 1,
        alpha=options.alpha,
    )
    level = 1 - options.alpha
    noise = estimates.differences[(CONTROL, PRODUCTION)][PRIMARY_METRIC]
    versus = estimates.differences[(CHALLENGER, CONTROL)][PRIMARY_METRIC]
    beyond = versus.low is not None and versus.low > 0
    return ControlComparison(
        version=version,
        control_difference=noise.point,
        control_difference_ci=_interval(noise.low, noise.high, level),
        versus_control=versus.point,
        versus_control_ci=_interval(versus.low, versus.high, level),
        transactions=len(common),
        frauds=frauds,
        beyond_noise=beyond,
        verdict=_verdict(version, noise, versus, beyond),
    )


def _signed(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:+.4f}"


def _verdict(
    version: str, noise: intervals.Estimate, versus: intervals.Estimate, beyond: bool
) -> str:
    spread = f"[{_signed(versus.low)}, {_signed(versus.high)}]" if versus.low is not None else "-"
    retrained = (
        f"retraining production's recipe with another seed (control {version}) moves fraud "
        f"caught by {_signed(noise.point)}"
    )
    if beyond:
        return (
            f"The challenger beats the noise floor: it catches {_signed(versus.point)} "
            f"{spread} more fraud than the control, while {retrained}."
        )
    if versus.high is not None and versus.high < 0:
        return (
            f"The challenger does worse than the control: challenger minus control is "
            f"{_signed(versus.point)} {spread}, while {retrained}. Retraining production's own "
            "recipe would do better than this challenger."
        )
    return (
        f"The challenger's difference is within the noise floor: challenger minus control is "
        f"{_signed(versus.point)} {spread}, and {retrained}. Treat its difference with "
        "production as what retraining alone produces."
    )


__all__ = ["Comparison", "LabelFree", "Maturity", "Options", "compare"]
