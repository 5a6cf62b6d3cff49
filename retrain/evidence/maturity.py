"""Label maturity: how long fraud labels take to arrive, and how complete they are now.

Chargebacks arrive days to months after the payment, so at any moment the recent transactions
carry only their fast labels.  Comparing models on them would count slow frauds as
legitimate.  This module estimates the label-delay curve from the labels seen, picks the
maturity window from it, and says how complete the labels are.

The curve.  A fraud label's delay is ``label_time - scored_at``.  A delay is only visible if
it is at most the transaction's age at the time of analysis (``as_of - scored_at``): the
sample is right-truncated, and the plain share of short delays among the labels seen
overstates how fast labels come (young transactions contribute only fast ones).  The
Lynden-Bell estimator corrects for that: with the distinct delays ``d_j``, ``n_j`` labels at
``d_j`` and ``R_j`` labels with delay <= ``d_j`` on transactions at least ``d_j`` old,

    F(d) = prod over d_j > d of (1 - n_j / R_j)

is the share of eventual labels that arrive within ``d``.  It is relative to the longest
delay that could be observed: delays longer than the oldest transaction's age cannot be
seen yet, and the report says up to which delay the curve reaches.  Steps whose risk set is
smaller than ``MIN_RISK_SET`` are left out: one old transaction must not carry the curve.

The window.  A transaction is *matured* once it is at least ``window`` old: by default the
delay by which ``quantile`` (0.9) of labels have arrived, taken from the curve, or a window
given in the settings.  With fewer than ``min_delays`` fraud labels the curve is not trusted
and the configured default window is used.

Completeness.  ``expected_share`` is the mean of ``F(age)`` over a set of transactions: the
expected share of their eventual labels already in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from registry.evidence import Maturity

Floats = npt.NDArray[np.float64]
MIN_RISK_SET = 5
CURVE_POINTS = 24


@dataclass(frozen=True)
class DelayCurve:
    """The estimated share of eventual labels in by each delay (a step function)."""

    delays: Floats  # increasing distinct delays (seconds)
    shares: Floats  # F at each delay, increasing to 1.0
    observed: int  # fraud labels it rests on

    def share(self, ages: Floats) -> Floats:
        """F(age) for each age: the expected share of eventual labels in by then."""
        if len(self.delays) == 0:
            return np.ones_like(ages, dtype=np.float64)
        index = np.searchsorted(self.delays, ages, side="right") - 1
        out = np.where(index >= 0, self.shares[np.clip(index, 0, None)], 0.0)
        return np.asarray(out, dtype=np.float64)

    def quantile(self, q: float) -> float:
        """The smallest delay by which at least ``q`` of eventual labels have arrived."""
        if len(self.delays) == 0:
            return 0.0
        index = int(np.searchsorted(self.shares, q - 1e-12, side="left"))
        return float(self.delays[min(index, len(self.delays) - 1)])

    def points(self, count: int = CURVE_POINTS) -> tuple[tuple[float, float], ...]:
        """At most ``count`` points ``(delay, share)`` of the curve, for reports."""
        if len(self.delays) == 0:
            return ()
        picks = np.unique(np.linspace(0, len(self.delays) - 1, count).round().astype(int))
        return tuple((float(self.delays[i]), float(self.shares[i])) for i in picks)


def delay_curve(scored_at: Floats, label_time: Floats, as_of: float) -> DelayCurve:
    """The Lynden-Bell estimate of the label-delay distribution (see the module docstring).

    ``scored_at`` and ``label_time`` are the fraud labels seen by ``as_of`` (unix seconds);
    labels before their score or after ``as_of`` must have been refused already.
    """
    delays = np.asarray(label_time, dtype=np.float64) - np.asarray(scored_at, dtype=np.float64)
    limits = as_of - np.asarray(scored_at, dtype=np.float64)  # the longest visible delay
    if len(delays) == 0:
        return DelayCurve(delays=np.empty(0), shares=np.empty(0), observed=0)
    order = np.sort(delays)
    distinct, counts = np.unique(order, return_counts=True)
    # R_j = #(delay <= d_j) - #(limit < d_j): labels at or below d_j on transactions that
    # could have shown a delay of d_j.
    at_or_below = np.searchsorted(order, distinct, side="right")
    too_young = np.searchsorted(np.sort(limits), distinct, side="left")
    risk = at_or_below - too_young
    usable = risk >= MIN_RISK_SET
    if not usable.any():
        usable = risk > 0
    distinct, counts, risk = distinct[usable], counts[usable], risk[usable]
    factors = np.clip(1.0 - counts / risk, 0.0, 1.0)
    # F(d_j) = product of the factors of the larger delays (F at the largest is 1).
    later = np.concatenate([np.cumprod(factors[::-1])[::-1][1:], [1.0]])
    return DelayCurve(delays=distinct, shares=later, observed=len(delays))


def maturity(
    curve: DelayCurve,
    ages: Floats,
    *,
    quantile: float,
    window_s: float | None,
    default_window_s: float,
    min_delays: int,
) -> Maturity:
    """The maturity window and the completeness of the labels on transactions of ``ages``.

    ``window_s`` (a setting) wins; otherwise the curve's ``quantile`` delay when it rests on
    at least ``min_delays`` fraud labels, else ``default_window_s``.
    """
    source: Literal["curve", "setting"] = "setting"
    if window_s is not None:
        window = window_s
    elif curve.observed >= min_delays:
        window, source = curve.quantile(quantile), "curve"
    else:
        window = default_window_s
    trusted = curve.observed >= min_delays
    share_all = share_matured = None
    if trusted and len(ages):
        shares = curve.share(ages)
        share_all = float(shares.mean())
        matured = ages >= window
        if matured.any():
            share_matured = float(shares[matured].mean())
    return Maturity(
        window_s=float(window),
        window_from=source,
        quantile=quantile,
        expected_share_all=share_all,
        expected_share_matured=share_matured,
        delays_seen=curve.observed,
        curve=curve.points(),
    )
