"""What production's blocks hide, and the weights that correct for it.

Labels come from what happens to a payment after the decision: a chargeback, a review.  A
payment production blocked never happens, so its outcome is never observed, and comparing
models on the observed payments alone is biased in the challenger's favour: production's
catches are invisible, the challenger's catches among production's misses are not.

Outcomes.  On a matured transaction (see :mod:`retrain.evidence.maturity`):

* an explicit label wins (the latest, ``is_fraud`` true or false);
* otherwise a transaction whose payment went ahead (production allowed it, sent it to review,
  or explored it) is legitimate: no chargeback came within the maturity window;
* otherwise (a would-be block that was blocked, without a label) the outcome is unobserved.

Weights.  A would-be block is observed when it was explored (probability ``s``, the recorded
``exploration_share``) or, if not, when someone labelled it anyway (share ``q`` of the
unexplored blocks that carry a label, assumed a random sample).  Its inclusion probability is
``s + (1 - s) q`` and an observed one weighs its inverse; every other transaction weighs 1.
Sums weighted so estimate the sums over all traffic (Horvitz-Thompson), which is what the
metrics in :mod:`retrain.evidence.intervals` are ratios of.  With neither exploration nor
labels on blocks, production's catches cannot be estimated and the comparison is refused.

``naive`` weights (1 for every observed transaction) are what a comparison on labeled data
alone computes; the report shows both so the bias is visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from registry.evidence import Estimator
from retrain.evidence.frame import BLOCK, LEGIT, NO_LABEL, Paired

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Observation:
    """Outcomes and weights of matured transactions (aligned with the rows given)."""

    y: npt.NDArray[np.int8]  # FRAUD, LEGIT or NO_LABEL (unobserved)
    weight: Floats  # inverse inclusion probability; 0 when unobserved
    naive: Floats  # 1 when observed, else 0
    would_block: int  # production's would-be blocks
    observed_blocks: int  # of those, how many have an observed outcome
    explored: int  # of those, how many were explored
    labeled_share: float  # q: share of unexplored would-be blocks that carry a label
    estimator: Estimator


def observe(rows: Paired) -> Observation:
    """Outcomes and Horvitz-Thompson weights of ``rows`` (all matured; see the module
    docstring)."""
    would_block = rows.production_decision == BLOCK
    explored = rows.explored & would_block
    labeled = rows.label != NO_LABEL
    went_ahead = ~would_block | explored
    y = np.where(labeled, rows.label, np.where(went_ahead, LEGIT, NO_LABEL)).astype(np.int8)
    observed = labeled | went_ahead
    hidden = would_block & ~explored
    q = float(labeled[hidden].mean()) if hidden.any() else 0.0
    share = np.clip(rows.exploration_share, 0.0, 1.0)
    inclusion = share + (1.0 - share) * q
    with np.errstate(divide="ignore"):
        block_weight = np.where(inclusion > 0, 1.0 / np.where(inclusion > 0, inclusion, 1.0), 0.0)
    weight = np.where(observed, np.where(would_block, block_weight, 1.0), 0.0)
    observed_blocks = int((observed & would_block).sum())
    reweighted = bool((observed & would_block & (inclusion < 1.0)).any())
    return Observation(
        y=y,
        weight=weight,
        naive=observed.astype(np.float64),
        would_block=int(would_block.sum()),
        observed_blocks=observed_blocks,
        explored=int(explored.sum()),
        labeled_share=q,
        estimator="ipw" if reweighted else "observed",
    )
