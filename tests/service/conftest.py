"""Fixtures of the scorer's tests: real (tiny) ONNX models, loaded; fresh metrics."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
from prometheus_client import CollectorRegistry

from registry.manifest import Manifest
from service.metrics import ServiceMetrics
from service.models import LoadedModel, load_model
from tests.factories import logistic_model, make_manifest


def build(version: str = "v1", bias: float = -2.0, name: str = "fraud") -> LoadedModel:
    """A real logistic model, loaded and warmed by the scorer's own loader."""
    model = logistic_model(bias=bias)
    return load_model(make_manifest(model, name=name, version=version), model)


class FailingModel(LoadedModel):
    """A shadow whose inference raises (as a broken graph or runtime would)."""

    __slots__ = ()

    def score(self, rows: Sequence[Mapping[str, object]]) -> npt.NDArray[np.float64]:
        raise RuntimeError("model exploded")


class HangingModel(LoadedModel):
    """A shadow whose inference blocks until ``release`` is set."""

    __slots__ = ()
    release = threading.Event()

    def score(self, rows: Sequence[Mapping[str, object]]) -> npt.NDArray[np.float64]:
        self.release.wait(10)
        return super().score(rows)


def variant(cls: type[LoadedModel], manifest: Manifest, artifact: bytes) -> LoadedModel:
    session = ort.InferenceSession(artifact, providers=["CPUExecutionProvider"])
    return cls(manifest, session, loaded_at=0.0)


@pytest.fixture
def metrics() -> ServiceMetrics:
    return ServiceMetrics(CollectorRegistry())


def sample_value(metrics: ServiceMetrics, name: str, labels: dict[str, str] | None = None) -> float:
    """A metric's current value from the registry (0 when the series does not exist)."""
    value = metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value
