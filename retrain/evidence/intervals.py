"""Labeled metrics with paired intervals: a Poisson bootstrap over transactions.

Every labeled metric is a ratio of weighted sums over the matured transactions, e.g. fraud
caught at production's block rate = (weighted frauds a model blocks) / (weighted frauds).
Each transaction carries a weight: 1 for transactions whose outcome is always observed, and
1/p for a would-be block observed with probability p (exploration, :mod:`retrain.evidence.ipw`):
the Horvitz-Thompson estimator of the same sums on all traffic.

At production's block rate.  Production blocks what it blocked; every other model blocks the
same number of transactions, its highest scores first (transactions tied at the cut-off
share what is left of the volume).  The volume counts every matured transaction, observed or
not: it is the friction the fraud team pays for.

The intervals.  Both models are measured on the same transactions, so their errors are
correlated and the difference is much tighter than two separate intervals suggest.  A paired
bootstrap resamples transactions and recomputes every metric of every model on each
replicate, cut-offs included (a replicate with more production blocks moves the challenger's
cut-off too).  It is a Poisson bootstrap (each transaction appears Poisson(1) times,
independently): a transaction that is neither a fraud, nor blocked by anyone, nor near a
cut-off adds only to the legitimate total, so those are summed in one normal draw per
replicate instead of being resampled one by one, and a million transactions cost what their
few thousand relevant ones cost.  Intervals are percentile intervals at ``1 - alpha``; the
replicates are seeded, so an analysis re-run gives the same numbers.  ROC-AUC needs no
resampling: DeLong's method gives its variance and the paired difference's from each
transaction's influence on it (weighted, so it holds under exploration too).

Looks.  The evidence is analysed again every day while labels mature.  Each recorded
analysis that could approve is a chance to approve on noise: with 10 looks at a 2.5% one-sided
level each, a challenger exactly at the tolerance is approved far more often than 2.5% (see
``tests/retrain/evidence/test_simulation.py``, which measures it).  The decision bound is
therefore taken at ``alpha / 2 / looks`` (Bonferroni over looks): the false-approval rate
stays below ``alpha / 2`` however many looks a team takes, at the price of a wider bound as
looks pile up.  The replicates are raised so the tail quantile rests on at least
``TAIL_REPLICATES`` replicates; past ``MAX_REPLICATES`` the bound uses the bootstrap's
standard error with the normal quantile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from retrain.evidence.frame import FRAUD, LEGIT

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Matrix = npt.NDArray[np.float64]

PRIMARY = "fraud_caught_at_block_rate"
TAIL_REPLICATES = 40
MAX_REPLICATES = 40_000
CHUNK = 250
CHUNK_ELEMENTS = 2_000_000  # replicates x rows resampled at once (16 MB a matrix)
# (name, higher is better): the metrics at production's block rate, then at own thresholds.
AT_VOLUME = (
    (PRIMARY, True),
    ("money_caught_at_block_rate", True),
    ("precision_at_block_rate", True),
    ("false_decline_rate_at_block_rate", False),
)
OWN = (("recall_at_own_threshold", True), ("precision_at_own_threshold", True))
METRICS = (*AT_VOLUME, *OWN, ("roc_auc", True))


@dataclass(frozen=True)
class Model:
    """One model's columns over the cohort: its score, its own-threshold block decision, and
    ``blocks`` when its blocks are given (production) rather than cut at the volume."""

    score: Floats
    own_block: Bools
    blocks: Floats | None = None


@dataclass(frozen=True)
class Cohort:
    """The matured transactions: outcome ``y`` (FRAUD/LEGIT; anything else is unobserved),
    Horvitz-Thompson ``weight`` (0 when unobserved), production's would-be blocks that set the
    volume, and the amounts (None: no money metric)."""

    y: npt.NDArray[np.int8]
    weight: Floats
    volume_blocks: Bools
    amount: Floats | None

    @property
    def observed(self) -> Bools:
        return np.asarray(self.weight > 0, dtype=np.bool_)


@dataclass(frozen=True)
class Estimate:
    point: float | None
    low: float | None = None
    high: float | None = None


@dataclass
class Estimates:
    """Per model and metric, and per pair ``(a, b)`` the difference ``a - b``."""

    values: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    differences: dict[tuple[str, str], dict[str, Estimate]] = field(default_factory=dict)
    decision_low: float | None = None
    decision_level: float | None = None
    replicates: int = 0


def replicates_for(looks: int, alpha: float, minimum: int) -> int:
    """Replicates needed so the looks-corrected tail rests on ``TAIL_REPLICATES`` of them."""
    tail = alpha / 2 / max(1, looks)
    return min(MAX_REPLICATES, max(minimum, math.ceil(TAIL_REPLICATES / tail)))


def _relevant(cohort: Cohort, models: Mapping[str, Model]) -> Bools:
    """Rows that can change any metric in any replicate (the rest are observed legitimate
    transactions nobody blocks: they only add to the legitimate total)."""
    keep: Bools = (cohort.observed & (cohort.y == FRAUD)) | cohort.volume_blocks
    k = int(cohort.volume_blocks.sum())
    margin = min(len(cohort.y), k + int(16 * math.sqrt(k)) + 100)
    for model in models.values():
        keep |= model.own_block
        if model.blocks is None and margin:
            top = np.argpartition(-model.score, margin - 1)[:margin]
            keep[top] = True
    return keep


@dataclass(frozen=True)
class _Ranking:
    """A model's rows by descending score, in groups of equal scores (ties)."""

    order: npt.NDArray[np.intp]
    starts: npt.NDArray[np.intp]

    @classmethod
    def of(cls, score: Floats) -> _Ranking:
        order = np.argsort(-score, kind="stable")
        ranked = score[order]
        return cls(order, np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]]))


def _top_sums(
    ranking: _Ranking, omega: Matrix, volume: Floats, columns: Mapping[str, Floats]
) -> dict[str, Floats]:
    """Per replicate, the sums of ``columns`` over what a model blocks when it blocks
    ``volume`` (resampled) transactions, its highest scores first: groups wholly above the
    cut-off count fully, the group at the cut-off by the share of it that is left."""
    ranked = omega[:, ranking.order]
    group_weight = np.add.reduceat(ranked, ranking.starts, axis=1)
    before = np.cumsum(group_weight, axis=1) - group_weight
    safe = np.where(group_weight > 0, group_weight, 1.0)
    shares = np.clip((volume[:, None] - before) / safe, 0.0, 1.0)
    return {
        name: (
            shares * np.add.reduceat(ranked * values[ranking.order], ranking.starts, axis=1)
        ).sum(axis=1)
        for name, values in columns.items()
    }


def _ratio(numerator: Floats, denominator: Floats) -> Floats:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(
            denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan
        )


def _block_metrics(
    cohort: Cohort,
    models: Mapping[str, Model],
    rankings: Mapping[str, _Ranking],
    omega: Matrix,
    rest: Floats,
) -> dict[str, dict[str, Floats]]:
    """Every at-volume and own-threshold metric of every model, per replicate (rows of
    ``omega``, already restricted to the relevant rows); ``rest`` is the legitimate weight
    of the other rows in each replicate."""
    w = cohort.weight
    columns = {
        "fraud": np.where(cohort.observed & (cohort.y == FRAUD), w, 0.0),
        "legit": np.where(cohort.observed & (cohort.y == LEGIT), w, 0.0),
        "observed": np.where(cohort.observed, w, 0.0),
    }
    if cohort.amount is not None:
        columns["money"] = columns["fraud"] * np.nan_to_num(cohort.amount)
    totals = {name: omega @ values for name, values in columns.items()}
    totals["legit"] = totals["legit"] + rest
    volume = omega @ cohort.volume_blocks.astype(np.float64)
    out: dict[str, dict[str, Floats]] = {}
    for name, model in models.items():
        if model.blocks is None:
            blocked = _top_sums(rankings[name], omega, volume, columns)
        else:
            blocked = {key: omega @ (model.blocks * values) for key, values in columns.items()}
        own = {key: omega @ (model.own_block * columns[key]) for key in ("fraud", "observed")}
        metrics = {
            PRIMARY: _ratio(blocked["fraud"], totals["fraud"]),
            "precision_at_block_rate": _ratio(blocked["fraud"], blocked["observed"]),
            "false_decline_rate_at_block_rate": _ratio(blocked["legit"], totals["legit"]),
            "recall_at_own_threshold": _ratio(own["fraud"], totals["fraud"]),
            "precision_at_own_threshold": _ratio(own["fraud"], own["observed"]),
        }
        if "money" in columns:
            metrics["money_caught_at_block_rate"] = _ratio(blocked["money"], totals["money"])
        out[name] = metrics
    return out


def _placements(score: Floats, fraud: Bools, w: Floats) -> tuple[Floats, Floats]:
    """DeLong's placement values, weighted: for each fraud the weighted share of legitimate
    transactions it outscores (ties half), for each legitimate one the weighted share of
    frauds that outscore it (ties half)."""
    legit = ~fraud
    order_l = np.argsort(score[legit])
    s_l, cw_l = score[legit][order_l], np.cumsum(w[legit][order_l])
    order_f = np.argsort(score[fraud])
    s_f, cw_f = score[fraud][order_f], np.cumsum(w[fraud][order_f])

    def below(ranked: Floats, cumulative: Floats, at: Floats, strict: bool) -> Floats:
        index = np.searchsorted(ranked, at, side="left" if strict else "right")
        return np.where(index > 0, cumulative[np.maximum(index - 1, 0)], 0.0)

    frauds, legits = score[fraud], score[legit]
    under, under_or_tied = below(s_l, cw_l, frauds, True), below(s_l, cw_l, frauds, False)
    v = (under + 0.5 * (under_or_tied - under)) / cw_l[-1]
    over = cw_f[-1] - below(s_f, cw_f, legits, False)
    over_or_tied = cw_f[-1] - below(s_f, cw_f, legits, True)
    u = (over + 0.5 * (over_or_tied - over)) / cw_f[-1]
    return v, u


def auc_with_influence(score: Floats, fraud: Bools, w: Floats) -> tuple[float, Floats]:
    """Weighted ROC-AUC and each row's influence on it (DeLong; frauds first, then the
    legitimate rows, each in their order in ``score``): the AUC's variance is the sum of the
    squared influences, a paired difference's that of the differences of influences."""
    v, u = _placements(score, fraud, w)
    wf, wl = w[fraud], w[~fraud]
    value = float((wf * v).sum() / wf.sum())
    influence = np.concatenate([wf * (v - value) / wf.sum(), wl * (u - value) / wl.sum()])
    return value, influence


def estimate(
    cohort: Cohort,
    models: Mapping[str, Model],
    pairs: Sequence[tuple[str, str]],
    *,
    replicates: int,
    seed: int,
    alpha: float = 0.05,
    looks: int = 1,
) -> Estimates:
    """Point values and ``1 - alpha`` percentile intervals of every metric of every model,
    and of the difference of every pair, from ``replicates`` bootstrap replicates; the first
    pair's primary difference also gets the looks-corrected decision bound (see the module
    docstring: pass ``replicates_for(looks, alpha, n)`` for a percentile bound)."""
    rng = np.random.default_rng(seed)
    total = replicates
    keep = _relevant(cohort, models)
    small = Cohort(
        y=cohort.y[keep],
        weight=cohort.weight[keep],
        volume_blocks=cohort.volume_blocks[keep],
        amount=None if cohort.amount is None else cohort.amount[keep],
    )
    small_models = {
        name: Model(
            score=m.score[keep],
            own_block=m.own_block[keep],
            blocks=None if m.blocks is None else m.blocks[keep],
        )
        for name, m in models.items()
    }
    outside = cohort.observed & (cohort.y == LEGIT) & ~keep
    rest_mean = float(cohort.weight[outside].sum())
    rest_sd = float(np.sqrt((cohort.weight[outside] ** 2).sum()))
    rankings = {name: _Ranking.of(m.score) for name, m in small_models.items() if m.blocks is None}
    width = int(keep.sum())
    point = _block_metrics(
        small, small_models, rankings, np.ones((1, width)), np.array([rest_mean])
    )
    draws: dict[str, dict[str, list[Floats]]] = {m: {} for m in models}
    chunk = max(1, min(CHUNK, CHUNK_ELEMENTS // max(width, 1)))  # bounds memory
    done = 0
    while done < total:
        size = min(chunk, total - done)
        omega = rng.poisson(1.0, (size, width)).astype(np.float64)
        rest = rng.normal(rest_mean, rest_sd, size) if rest_sd > 0 else np.full(size, rest_mean)
        for name, metrics in _block_metrics(small, small_models, rankings, omega, rest).items():
            for metric, values in metrics.items():
                draws[name].setdefault(metric, []).append(values)
        done += size
    result = _summarise(point, draws, pairs, alpha, looks, total)
    _add_auc(cohort, models, alpha, result, pairs)
    return result


def _add_auc(
    cohort: Cohort,
    models: Mapping[str, Model],
    alpha: float,
    result: Estimates,
    pairs: Sequence[tuple[str, str]],
) -> None:
    """ROC-AUC of every model and pair on every observed row, with DeLong intervals (normal,
    from each transaction's influence; paired for the differences, no resampling)."""
    observed = cohort.observed
    fraud = cohort.y[observed] == FRAUD
    if not fraud.any() or fraud.all():
        return
    w = cohort.weight[observed]
    z = NormalDist().inv_cdf(1 - alpha / 2)
    found = {name: auc_with_influence(m.score[observed], fraud, w) for name, m in models.items()}
    for name, (value, influence) in found.items():
        sd = float(np.sqrt((influence**2).sum()))
        result.values[name]["roc_auc"] = Estimate(
            point=value, low=value - z * sd, high=value + z * sd
        )
    for first, second in pairs:
        (a, ia), (b, ib) = found[first], found[second]
        sd = float(np.sqrt(((ia - ib) ** 2).sum()))
        gap = a - b
        result.differences[(first, second)]["roc_auc"] = Estimate(
            point=gap, low=gap - z * sd, high=gap + z * sd
        )


def _estimate(point: float, values: Floats, alpha: float) -> Estimate:
    """``point`` with the ``1 - alpha`` percentile interval of its bootstrap ``values``."""
    finite = values[np.isfinite(values)]
    if len(values) == 0:
        return Estimate(point=_number(point))
    # A metric undefined on many replicates (a denominator that is often 0) has no honest
    # interval: say none rather than one from the lucky replicates.
    if len(finite) < 0.95 * len(values) or len(finite) < 20:
        return Estimate(point=_number(point))
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return Estimate(point=_number(point), low=float(low), high=float(high))


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _summarise(
    point: dict[str, dict[str, Floats]],
    draws: dict[str, dict[str, list[Floats]]],
    pairs: Sequence[tuple[str, str]],
    alpha: float,
    looks: int,
    total: int,
) -> Estimates:
    empty = np.empty(0)
    joined = {
        name: {metric: np.concatenate(draws[name].get(metric, [empty])) for metric in metrics}
        for name, metrics in point.items()
    }
    result = Estimates(replicates=total)
    for name, metrics in point.items():
        result.values[name] = {
            metric: _estimate(value[0], joined[name][metric], alpha)
            for metric, value in metrics.items()
        }
    for first, second in pairs:
        shown: dict[str, Estimate] = {}
        for metric in point[first]:
            a, b = point[first][metric][0], point[second][metric][0]
            spread = joined[first][metric] - joined[second][metric]
            shown[metric] = _estimate(a - b, spread, alpha)
        result.differences[(first, second)] = shown
    if pairs:
        first, second = pairs[0]
        spread = joined[first][PRIMARY] - joined[second][PRIMARY]
        centre = result.differences[pairs[0]][PRIMARY].point
        result.decision_low, result.decision_level = _decision_bound(spread, centre, alpha, looks)
    return result


def _decision_bound(
    spread: Floats, centre: float | None, alpha: float, looks: int
) -> tuple[float | None, float]:
    """The lower bound of the primary difference at one-sided level ``alpha / 2 / looks``."""
    tail = alpha / 2 / max(1, looks)
    finite = spread[np.isfinite(spread)]
    if centre is None or len(spread) == 0 or len(finite) < 0.95 * len(spread) or len(finite) < 20:
        return None, 1 - tail
    if len(finite) * tail >= TAIL_REPLICATES * 0.99:
        return float(np.quantile(finite, tail)), 1 - tail
    z = NormalDist().inv_cdf(1 - tail)
    return centre - z * float(finite.std(ddof=1)), 1 - tail
