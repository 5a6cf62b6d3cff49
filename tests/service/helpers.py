"""Helpers of the scorer's tests: real (tiny) models, loaded or failing; the admin token;
polling; scored transactions as the scorer hands them over; counts built from known samples
(the guard and drift tests).  Registry moves come from :mod:`tests.lifecycle`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from registry.manifest import Manifest
from service.metrics import LATENCY_BUCKETS, SCORE_BUCKETS, ServiceMetrics
from service.models import Feeds, LoadedModel, load_model
from service.shadow import Scored
from service.signals import Counts
from service.tally import bucket_counts
from tests.factories import logistic_model, make_manifest, random_rows
from tests.lifecycle import production as make_production
from tests.lifecycle import register

__all__ = ["make_production", "register"]  # the registry moves, under the tests' names

ADMIN_TOKEN = "test-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ROWS = random_rows(n=6, seed=11)

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


def build(version: str = "v1", bias: float = -2.0, name: str = "fraud") -> LoadedModel:
    """A real logistic model, loaded and warmed by the scorer's own loader."""
    model = logistic_model(bias=bias)
    return load_model(make_manifest(model, name=name, version=version), model)


class FailingModel(LoadedModel):
    """A shadow whose inference raises (as a broken graph or runtime would)."""

    __slots__ = ()

    def run(self, feeds: Feeds) -> npt.NDArray[np.float64]:
        raise RuntimeError("model exploded")


class HangingModel(LoadedModel):
    """A shadow whose inference blocks until ``release`` is set."""

    __slots__ = ()
    release = threading.Event()

    def run(self, feeds: Feeds) -> npt.NDArray[np.float64]:
        self.release.wait(10)
        return super().run(feeds)


def variant(cls: type[LoadedModel], manifest: Manifest, artifact: bytes) -> LoadedModel:
    session = ort.InferenceSession(artifact, providers=["CPUExecutionProvider"])
    return cls(manifest, session, loaded_at=0.0)


def sample_value(metrics: ServiceMetrics, name: str, labels: dict[str, str] | None = None) -> float:
    """A metric's current value from the registry (0 when the series does not exist)."""
    value = metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


def wait_until(
    condition: Callable[[], bool], timeout_s: float = 10.0, step_s: float = 0.02
) -> bool:
    """Poll ``condition`` until it holds; False after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step_s)
    return condition()


def scored(production: LoadedModel, n: int = 6, scored_at: float | None = None) -> list[Scored]:
    """``n`` transactions scored by ``production`` (now), as the scorer hands them over."""
    scored_at = time.time() if scored_at is None else scored_at
    out = []
    for i, row in enumerate(ROWS[:n]):
        score = float(production.score([row])[0])
        decision = production.decide(score).value
        out.append(Scored(f"t{i}", f"r{i}", scored_at, row, production.name, production.version,
                          production.schema_key, score, decision, 0.05, 400))  # fmt: skip
    return out
