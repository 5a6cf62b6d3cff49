"""The ``train`` step's pluggable part: a :class:`Trainer` turns a feature matrix into a model.

A trainer only ever sees the float32 feature matrix built by :mod:`retrain.encoding` (the
same numbers the exported graph computes), and its model must be able to describe itself as
an ONNX graph from that matrix to a fraud probability.  LightGBM is the default; another
library plugs in by implementing the two Protocols below.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
import onnx

from retrain.encoding import FEATURES_NAME

Matrix = npt.NDArray[np.float32]
Scores = npt.NDArray[np.float64]
CORE_OUTPUT = "probabilities"  # [N, 2]; column 1 is the fraud probability


class TrainedModel(Protocol):
    """A fitted model: native scores, ONNX form, and a file form to resume from."""

    def predict(self, features: Matrix) -> Scores:
        """Fraud probability per row, from the native library."""
        ...

    def to_onnx(self, n_features: int) -> onnx.ModelProto:
        """A graph with input :data:`FEATURES_NAME` (float [N, n_features]) and output
        :data:`CORE_OUTPUT` (float [N, 2], column 1 = P(fraud))."""
        ...

    def save(self, path: Path) -> None:
        """Write the model to ``path`` so :meth:`Trainer.load` can read it back."""
        ...


class Trainer(Protocol):
    """Fits a :class:`TrainedModel`; ``name`` and ``params`` go into the lineage."""

    @property
    def name(self) -> str:
        """Short name recorded in the lineage (e.g. ``lightgbm``)."""
        ...

    @property
    def params(self) -> dict[str, object]: ...

    def fit(
        self, features: Matrix, labels: npt.NDArray[np.int8], names: tuple[str, ...]
    ) -> TrainedModel:
        """Train on ``features`` (float32, NaN = missing) and 0/1 ``labels``."""
        ...

    def load(self, path: Path) -> TrainedModel:
        """Read back a model written by :meth:`TrainedModel.save`."""
        ...


def _floor32(value: float) -> float:
    """The largest float32 that is <= ``value`` (as a Python float, exactly representable)."""
    rounded = np.float32(value)
    if float(rounded) > value:
        rounded = np.nextafter(rounded, np.float32(-np.inf))
    return float(rounded)


def float32_thresholds(model: str) -> str:
    """LightGBM's model text with every numerical split threshold t replaced by floor32(t).

    LightGBM keeps thresholds as doubles; the ONNX tree ensemble stores them as float32,
    rounded to nearest.  When t rounds *up* to a float32 feature value x (adjacent float32
    values, e.g. large amount sums), the native model sends x right (x > t) and the graph sends
    it left (x <= float32(t)): a parity failure of ~1e-3 seen on real runs.  For float32 inputs
    ``x <= t`` holds exactly when ``x <= floor32(t)``, so this rewrite changes no native
    prediction on float32 data and makes the exported thresholds exact.
    """
    lines = model.split("\n")
    pending: int | None = None  # index of this tree's threshold line (it precedes decision_type)
    for index, line in enumerate(lines):
        if line.startswith("threshold="):
            pending = index
        elif line.startswith("decision_type=") and pending is not None:
            kinds = [int(x) for x in line.split("=", 1)[1].split()]
            values = lines[pending].split("=", 1)[1].split()
            # decision_type bit 0 marks a categorical split, whose "threshold" is an index.
            fixed = [
                v if kind & 1 else repr(_floor32(float(v)))
                for v, kind in zip(values, kinds, strict=True)
            ]
            lines[pending] = "threshold=" + " ".join(fixed)
            pending = None
    # The header's tree_sizes (byte offsets of each tree) no longer hold; without the line,
    # LightGBM parses the trees one after another.
    lines = [line for line in lines if not line.startswith("tree_sizes=")]
    return "\n".join(lines)


@dataclass(frozen=True)
class _LightGBMModel:
    booster: object  # lightgbm.Booster (untyped library)

    def predict(self, features: Matrix) -> Scores:
        # float32 -> float64 is exact, so the native model sees the numbers the graph sees.
        raw = self.booster.predict(features.astype(np.float64))  # type: ignore[attr-defined]
        return np.asarray(raw, dtype=np.float64)

    def to_onnx(self, n_features: int) -> onnx.ModelProto:
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        converted: onnx.ModelProto = convert_lightgbm(
            self.booster,
            initial_types=[(FEATURES_NAME, FloatTensorType([None, n_features]))],
            zipmap=False,
            target_opset=15,
        )
        return converted

    def save(self, path: Path) -> None:
        self.booster.save_model(str(path))  # type: ignore[attr-defined]


@dataclass(frozen=True)
class LightGBMTrainer:
    """Gradient-boosted trees (LightGBM), deterministic for a given seed."""

    n_trees: int = 150
    num_leaves: int = 31
    learning_rate: float = 0.05
    seed: int = 1
    name: str = "lightgbm"

    @property
    def params(self) -> dict[str, object]:
        return {
            "objective": "binary",
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "min_child_samples": 20,
            "feature_fraction": 0.9,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "seed": self.seed,
            "deterministic": True,
            "num_threads": 1,  # the worker shares its machine; two threads were slower
            "force_col_wise": True,
            "verbose": -1,
            "n_trees": self.n_trees,
        }

    def fit(
        self, features: Matrix, labels: npt.NDArray[np.int8], names: tuple[str, ...]
    ) -> TrainedModel:
        import lightgbm

        params = {k: v for k, v in self.params.items() if k != "n_trees"}
        data = lightgbm.Dataset(
            features.astype(np.float64),
            label=labels,
            feature_name=list(names),
            free_raw_data=True,
        )
        booster = lightgbm.train(params, data, num_boost_round=self.n_trees)
        return _LightGBMModel(
            lightgbm.Booster(model_str=float32_thresholds(booster.model_to_string()))
        )

    def load(self, path: Path) -> TrainedModel:
        import lightgbm

        return _LightGBMModel(lightgbm.Booster(model_file=str(path)))
