"""The preprocessing shared by training and the exported graph: one spec, two implementations.

Categorical values become codes ordered by their training fraud rate (so a tree's ordinal
splits group risky values together); a value not seen in training becomes :data:`UNKNOWN`.
One derived feature, ``cross_border`` (merchant country != card country), is computed from
two inputs.  ``transform`` does it with numpy for the native model; ``onnx_nodes`` emits the
same computation as standard ONNX nodes (``ai.onnx.ml.LabelEncoder``, ``Equal``, ``Concat``)
so the exported graph takes the raw inputs.  The parity step checks the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from onnx import NodeProto, TensorProto, helper

from registry.contract import CATEGORICAL_INPUT, NUMERIC_INPUT
from retrain.schema import CATEGORICAL_FEATURES, NUMERIC_FEATURES

UNKNOWN = -1.0
FEATURES_NAME = "features"
_CROSS = ("merchant_country", "card_country")
_MIN_COUNT = 5  # values seen fewer times in training are treated as unknown


@dataclass(frozen=True)
class FeatureEncoder:
    """Vocabulary per categorical input (value -> code), fitted on the training set."""

    vocabularies: dict[str, dict[str, int]]

    @classmethod
    def fit(cls, train: pd.DataFrame) -> FeatureEncoder:
        vocabularies: dict[str, dict[str, int]] = {}
        for column in CATEGORICAL_FEATURES:
            stats = train.groupby(column, observed=True)["label"].agg(["mean", "size"])
            stats = stats.loc[stats["size"] >= _MIN_COUNT]
            ordered = stats.sort_values(["mean", "size"], kind="stable").index
            vocabularies[column] = {str(value): code for code, value in enumerate(ordered)}
        return cls(vocabularies)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Columns of the matrix the trainer sees, in order."""
        return (*NUMERIC_FEATURES, *(f"{c}_code" for c in CATEGORICAL_FEATURES), "cross_border")

    def transform(self, frame: pd.DataFrame) -> npt.NDArray[np.float32]:
        """The feature matrix (float32, as the graph computes it) of a frame of model inputs."""
        numeric = frame.loc[:, list(NUMERIC_FEATURES)].to_numpy(dtype=np.float32)
        codes = [
            frame[column].astype(str).map(self.vocabularies[column]).fillna(UNKNOWN)
            for column in CATEGORICAL_FEATURES
        ]
        cross = (frame[_CROSS[0]].astype(str) != frame[_CROSS[1]].astype(str)).astype(np.float32)
        stacked = np.column_stack([numeric, *[c.to_numpy(np.float32) for c in codes], cross])
        return stacked.astype(np.float32)

    def onnx_nodes(self) -> list[NodeProto]:
        """Nodes computing :data:`FEATURES_NAME` [N, F] float from the two graph inputs."""
        nodes: list[NodeProto] = []
        coded: list[str] = []
        for j, column in enumerate(CATEGORICAL_FEATURES):
            vocab = self.vocabularies[column]
            nodes.append(
                helper.make_node(
                    "Constant",
                    [],
                    [f"idx_{column}"],
                    value=helper.make_tensor(f"i{j}", TensorProto.INT64, [1], [j]),
                )
            )
            nodes.append(
                helper.make_node(
                    "Gather", [CATEGORICAL_INPUT, f"idx_{column}"], [f"raw_{column}"], axis=1
                )
            )
            nodes.append(
                helper.make_node(
                    "LabelEncoder",
                    [f"raw_{column}"],
                    [f"code_{column}"],
                    domain="ai.onnx.ml",
                    keys_strings=list(vocab) or [""],
                    values_floats=[float(v) for v in vocab.values()] or [UNKNOWN],
                    default_float=UNKNOWN,
                )
            )
            coded.append(f"code_{column}")
        nodes.append(
            helper.make_node("Equal", [f"raw_{_CROSS[0]}", f"raw_{_CROSS[1]}"], ["same_country"])
        )
        nodes.append(helper.make_node("Not", ["same_country"], ["cross_bool"]))
        nodes.append(
            helper.make_node("Cast", ["cross_bool"], ["cross_border"], to=TensorProto.FLOAT)
        )
        nodes.append(
            helper.make_node(
                "Concat", [NUMERIC_INPUT, *coded, "cross_border"], [FEATURES_NAME], axis=1
            )
        )
        return nodes

    def to_json(self) -> dict[str, dict[str, int]]:
        return self.vocabularies

    @classmethod
    def from_json(cls, data: dict[str, dict[str, int]]) -> FeatureEncoder:
        return cls({column: dict(vocab) for column, vocab in data.items()})
