"""The trainer is pluggable: a scikit-learn pipeline goes through the same export, parity,
evaluation and registration as LightGBM."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import pytest

from registry import ModelRegistry, State
from retrain.encoding import FEATURES_NAME, FeatureEncoder
from retrain.errors import StepError
from retrain.export import export_onnx
from retrain.runner import Runner
from retrain.training import Matrix, Scores, TrainedModel


@dataclass(frozen=True)
class _SklearnModel:
    pipeline: Any

    def predict(self, features: Matrix) -> Scores:
        return np.asarray(self.pipeline.predict_proba(features)[:, 1], dtype=np.float64)

    def to_onnx(self, n_features: int) -> onnx.ModelProto:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        converted: onnx.ModelProto = convert_sklearn(
            self.pipeline,
            initial_types=[(FEATURES_NAME, FloatTensorType([None, n_features]))],
            options={"zipmap": False},
            target_opset={"": 15, "ai.onnx.ml": 3},
        )
        return converted

    def save(self, path: Path) -> None:
        path.write_bytes(pickle.dumps(self.pipeline))


@dataclass(frozen=True)
class LogisticTrainer:
    """Imputation, scaling and a logistic regression, all from scikit-learn."""

    @property
    def name(self) -> str:
        return "sklearn-logistic"

    @property
    def params(self) -> dict[str, object]:
        return {"C": 1.0, "max_iter": 1000}

    def fit(
        self, features: Matrix, labels: npt.NDArray[np.int8], names: tuple[str, ...]
    ) -> TrainedModel:
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        pipeline = make_pipeline(
            SimpleImputer(), StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)
        )
        pipeline.fit(features, labels)
        return _SklearnModel(pipeline)

    def load(self, path: Path) -> TrainedModel:
        return _SklearnModel(pickle.loads(path.read_bytes()))  # noqa: S301 - our own file


def test_a_scikit_learn_trainer_plugs_into_the_whole_pipeline(
    make_runner: Callable[..., Runner], model_registry: ModelRegistry
) -> None:
    result = make_runner(trainer=LogisticTrainer()).run()
    assert result.outcome == "succeeded", result.reason
    assert model_registry.state("fraud", result.run_id) is State.SHADOW
    manifest = model_registry.manifest("fraud", result.run_id)
    assert manifest.lineage.trainer == "sklearn-logistic"
    parity = next(s for s in result.steps if s.name == "parity")
    assert parity.summary["max_abs_diff"] <= 1e-4


@dataclass(frozen=True)
class _WrongInput:
    inner: TrainedModel

    def predict(self, features: Matrix) -> Scores:
        return self.inner.predict(features)

    def to_onnx(self, n_features: int) -> onnx.ModelProto:
        model = self.inner.to_onnx(n_features)
        model.graph.input[0].name = "x"
        return model

    def save(self, path: Path) -> None:
        self.inner.save(path)


def test_a_trainer_graph_with_the_wrong_input_is_refused_by_name() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 13)).astype(np.float32)
    labels = (rng.random(200) < 0.2).astype(np.int8)
    model = LogisticTrainer().fit(features, labels, ())
    with pytest.raises(StepError) as caught:
        export_onnx(_WrongInput(model), FeatureEncoder({c: {} for c in _CATEGORICAL}))
    assert str(caught.value) == "the trainer's graph takes inputs ['x']; expected ['features']"


_CATEGORICAL = ("currency", "merchant_category", "merchant_country", "card_country")


def test_lightgbm_export_agrees_where_thresholds_fall_between_adjacent_float32s() -> None:
    # Amounts near 100,000 with cents: neighbouring values are adjacent float32s, so a double
    # threshold between them rounds *onto* one of them when stored as float32 in the graph.
    # Without float32_thresholds this data gave a max difference of 0.47 (measured).
    import onnxruntime as ort

    from retrain.training import LightGBMTrainer

    rng = np.random.default_rng(0)
    features = np.round(rng.uniform(100_000, 100_100, (4000, 2)), 2).astype(np.float32)
    labels = (
        ((features[:, 0] - 100_000) * (features[:, 1] - 100_000) > 2500) ^ (rng.random(4000) < 0.05)
    ).astype(np.int8)
    model = LightGBMTrainer(n_trees=40, num_leaves=63).fit(features, labels, ("a", "b"))
    graph = ort.InferenceSession(
        model.to_onnx(2).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    scores = graph.run(None, {FEATURES_NAME: features})[1][:, 1]
    assert float(np.abs(scores - model.predict(features)).max()) <= 1e-5


def test_float32_thresholds_rounds_numeric_thresholds_down_and_keeps_categorical_ones() -> None:
    from retrain.training import float32_thresholds

    text = "\n".join(
        [
            "tree_sizes=10 10",
            "Tree=0",
            "threshold=100000.00500000001 3 0.1",
            "decision_type=2 1 2",
            "leaf_value=0 0 0 0",
        ]
    )
    fixed = float32_thresholds(text).splitlines()
    assert "tree_sizes=10 10" not in fixed
    values = fixed[1].split("=", 1)[1].split()
    assert float(values[0]) == float(np.float32(100000.0))  # nearest float32 is above: one down
    assert float(values[0]) <= 100000.00500000001
    assert values[1] == "3"  # categorical split: untouched
    assert float(values[2]) == float(np.float32(0.1)) or float(values[2]) < 0.1
