"""Helpers of the guard and drift tests: counts built from known samples, loaded models."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.metrics import LATENCY_BUCKETS, SCORE_BUCKETS
from service.models import LoadedModel, load_model
from service.signals import Counts
from service.tally import bucket_counts
from tests.factories import logistic_model, make_manifest

BLOCK_AT = 0.9  # the block threshold of tests.factories.make_manifest


def counts(scores: Sequence[float], latency_s: Sequence[float] | float = 0.001) -> Counts:
    """The Counts a production version has after scoring ``scores`` (blocked above 0.9), each
    model call taking ``latency_s`` (one value, or one per score)."""
    latencies = [latency_s] * len(scores) if isinstance(latency_s, float) else list(latency_s)
    return Counts(
        scored=len(scores),
        blocked=sum(1 for s in scores if s >= BLOCK_AT),
        scores=tuple(bucket_counts(np.array(SCORE_BUCKETS), scores)),
        latency=tuple(bucket_counts(np.array(LATENCY_BUCKETS), latencies)),
    )


def loaded(version: str, bias: float = -2.0) -> LoadedModel:
    """A real logistic model loaded by the scorer's own loader."""
    model = logistic_model(bias=bias)
    return load_model(make_manifest(model, version=version), model)
