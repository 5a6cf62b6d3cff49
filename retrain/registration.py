"""From a trained candidate to a manifest, and the registry operations the pipeline needs.

:class:`ModelStore` is the pipeline's narrow view of the model registry (production lookup,
register, shadow, reject); :mod:`retrain.store` implements it on
:class:`registry.ModelRegistry`.  :func:`build_manifest` fills the contract: thresholds
chosen on the evaluation set, offline metrics, full lineage and golden examples scored by the
exported graph itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from registry.manifest import GoldenExample, Lineage, Manifest, Scalar, Thresholds
from retrain.constants import GOLDEN_EXAMPLES
from retrain.evaluation import threshold_for_rate
from retrain.export import OUTPUT
from retrain.schema import MODEL_SCHEMA
from retrain.scoring import rows_of


@dataclass(frozen=True)
class ProductionModel:
    """The model currently in production: its manifest and its verified artifact."""

    manifest: Manifest
    artifact: bytes


class ModelStore(Protocol):
    """What the pipeline asks of the registry."""

    def production(self, name: str) -> ProductionModel | None:
        """The production model of ``name``, or None when there is none yet."""
        ...

    def has(self, name: str, version: str) -> bool:
        """Whether ``name:version`` is registered (in any state)."""
        ...

    def register(self, artifact: bytes, manifest: Manifest, *, reason: str) -> Manifest:
        """Validate and store a new version (state: registered)."""
        ...

    def shadow(self, name: str, version: str, *, rate: float, reason: str) -> None:
        """Put a registered version into shadow at sampling ``rate``."""
        ...

    def reject(self, name: str, version: str, *, reason: str) -> None:
        """Mark a registered version rejected, with the reason."""
        ...


@dataclass(frozen=True)
class Candidate:
    """What :func:`build_manifest` needs to know about the run."""

    name: str
    version: str
    run_id: str
    code_version: str
    trainer: str
    window_start: datetime
    window_end: datetime
    data_fingerprint: str
    parent_version: str | None
    data_source: str | None = None
    data_partitions: tuple[str, ...] = ()
    seed: int | None = None
    recipe: dict[str, Scalar] | None = None  # how to train it again (retrain.control)
    control_of: str | None = None  # a control: the production version whose recipe it is


def choose_thresholds(scores: npt.NDArray[np.float64], block: float, review: float) -> Thresholds:
    """Block the top ``block`` share of the evaluation set, review up to the top ``review``."""
    block_at = threshold_for_rate(scores, block)
    review_at = min(threshold_for_rate(scores, max(review, block)), block_at)
    return Thresholds(review=review_at, block=block_at)


def golden_examples(
    evaluation: pd.DataFrame, scores: npt.NDArray[np.float64], count: int = GOLDEN_EXAMPLES
) -> tuple[GoldenExample, ...]:
    """Evaluation rows with the graph's own scores: the riskiest third, the rest at random."""
    rng = np.random.default_rng(0)
    top = list(np.argsort(-scores, kind="stable")[: count // 3])
    rest = [int(i) for i in rng.permutation(len(scores)) if i not in set(top)][: count - len(top)]
    chosen = sorted(int(i) for i in top + rest)
    rows = rows_of(evaluation.iloc[chosen], MODEL_SCHEMA)
    return tuple(
        GoldenExample(inputs=row, expected_score=float(np.clip(scores[i], 0.0, 1.0)))
        for row, i in zip(rows, chosen, strict=True)
    )


AMOUNT_FIELD = "amount"  # the payment amount in the model's input schema (retrain.schema)


def build_manifest(
    candidate: Candidate,
    thresholds: Thresholds,
    metrics: dict[str, Any],
    golden: tuple[GoldenExample, ...],
    description: str,
) -> Manifest:
    """The candidate's manifest (sha256 and created_at are filled in by registration)."""
    finite = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
    return Manifest(
        name=candidate.name,
        version=candidate.version,
        description=description,
        input_schema=MODEL_SCHEMA,
        output=OUTPUT,
        thresholds=thresholds,
        metrics=finite,
        lineage=Lineage(
            pipeline_run_id=candidate.run_id,
            code_version=candidate.code_version,
            training_window_start=candidate.window_start,
            training_window_end=candidate.window_end,
            data_fingerprint=candidate.data_fingerprint,
            parent_version=candidate.parent_version,
            trainer=candidate.trainer,
            data_source=candidate.data_source,
            data_partitions=candidate.data_partitions,
            seed=candidate.seed,
            recipe=candidate.recipe,
            control_of=candidate.control_of,
        ),
        golden_examples=golden,
        # The evidence puts money on the decisions challenger and production disagree on.
        amount_field=AMOUNT_FIELD,
    )
