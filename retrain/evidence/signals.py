"""Label-free signals: what shadow records say from the first one, before any label arrives.

All of them compare the challenger with production on the same transactions (the
:class:`~retrain.evidence.frame.Paired` rows), each model at its own thresholds:

* decision agreement: the share of transactions both models decide alike;
* the flip matrix: for each (production, challenger) pair of decisions, how many transactions
  and how much money (the manifest's ``amount_field``) -- a challenger that would block
  production's good customers shows here first;
* rank correlation (Spearman) of the two scores: a challenger that ranks risk differently is
  a different model, whatever its averages;
* PSI and KS between the two score distributions: PSI over ten bins at production's score
  deciles (0.1 is the usual "look at it" mark, 0.25 "it moved"), KS the largest gap between
  the two cumulative distributions;
* the challenger's operational health on every transaction it was sampled on: error, timeout,
  busy and shed rates, and its inference latency next to production's.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from registry.evidence import Flip, LabelFree, Quantiles
from retrain.evidence.frame import DECISIONS, Paired, Sampling

Floats = npt.NDArray[np.float64]
PSI_BINS = 10
PSI_FLOOR = 1e-4  # an empty bin counts as this share, so PSI stays finite


def ranks(values: Floats) -> Floats:
    """1-based ranks, ties sharing the mean of their positions."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts
    return np.asarray((starts + (counts + 1) / 2.0)[inverse], dtype=np.float64)


def spearman(a: Floats, b: Floats) -> float | None:
    """Spearman's rank correlation; None with fewer than 3 values or a constant column."""
    if len(a) < 3:
        return None
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def psi(expected: Floats, actual: Floats, bins: int = PSI_BINS) -> float | None:
    """Population stability index of ``actual`` against ``expected``, over bins at the
    quantiles of ``expected`` (repeated edges merged)."""
    if len(expected) == 0 or len(actual) == 0:
        return None
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)[1:-1]))
    base = np.bincount(np.searchsorted(edges, expected, side="right"), minlength=len(edges) + 1)
    new = np.bincount(np.searchsorted(edges, actual, side="right"), minlength=len(edges) + 1)
    p = np.maximum(base / len(expected), PSI_FLOOR)
    q = np.maximum(new / len(actual), PSI_FLOOR)
    return float(((q - p) * np.log(q / p)).sum())


def ks(a: Floats, b: Floats) -> float | None:
    """The two-sample Kolmogorov-Smirnov statistic (largest gap between the two CDFs)."""
    if len(a) == 0 or len(b) == 0:
        return None
    a, b = np.sort(a), np.sort(b)
    points = np.concatenate([a, b])
    gap = np.searchsorted(a, points, side="right") / len(a) - np.searchsorted(
        b, points, side="right"
    ) / len(b)
    return float(np.abs(gap).max())


def _quantiles(values: Floats) -> Quantiles | None:
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return None
    p50, p95, p99 = np.quantile(finite, [0.5, 0.95, 0.99])
    return Quantiles(p50=float(p50), p95=float(p95), p99=float(p99))


def flips(rows: Paired) -> tuple[Flip, ...]:
    """Counts and money of every (production, challenger) decision pair that occurs."""
    has_money = bool(np.isfinite(rows.amount).any())
    money = np.nan_to_num(rows.amount)
    cell = rows.production_decision.astype(np.int64) * 3 + rows.challenger_decision
    counts = np.bincount(cell, minlength=9)
    amounts = np.bincount(cell, weights=money, minlength=9)
    return tuple(
        Flip(
            production=DECISIONS[i // 3],
            challenger=DECISIONS[i % 3],
            count=int(counts[i]),
            amount=float(amounts[i]) if has_money else None,
        )
        for i in range(9)
        if counts[i]
    )


def label_free(rows: Paired, sampling: Sampling) -> LabelFree:
    """Every label-free signal over ``rows``, and the challenger's health over what it was
    sampled on (``sampling``)."""
    sampled = max(sampling.sampled, 1)
    errors = sampling.errors
    other = sum(n for kind, n in errors.items() if kind not in ("timeout", "busy", "shed"))
    n = len(rows)
    return LabelFree(
        transactions=n,
        sampled=sampling.sampled,
        agreement=float((rows.production_decision == rows.challenger_decision).mean())
        if n
        else None,
        flips=flips(rows) if n else (),
        rank_correlation=spearman(rows.production_score, rows.challenger_score),
        psi=psi(rows.production_score, rows.challenger_score),
        ks=ks(rows.production_score, rows.challenger_score),
        error_rate=other / sampled,
        timeout_rate=errors["timeout"] / sampled,
        busy_rate=errors["busy"] / sampled,
        shed_rate=errors["shed"] / sampled,
        challenger_latency_ms=_quantiles(rows.challenger_latency_ms),
        production_latency_ms=_quantiles(rows.production_latency_ms),
    )
