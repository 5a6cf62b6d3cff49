"""Models trained outside Shadowline register too, if they follow the input convention.

A scikit-learn pipeline (imputation + scaling + logistic regression, exported with skl2onnx) and
a LightGBM classifier (exported with onnxmltools), each taking ``numeric`` float32 [N, k].
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest

from registry import ModelRegistry, State, ValidationFailed
from registry.contract import RowCodec, scores_from_output
from registry.manifest import (
    FieldType,
    GoldenExample,
    InputField,
    InputSchema,
    Lineage,
    Manifest,
    OutputSpec,
    Thresholds,
)
from tests.factories import random_rows

SCHEMA = InputSchema(
    fields=(
        InputField(name="amount", type=FieldType.FLOAT, minimum=0),
        InputField(name="card_age_days", type=FieldType.INT, minimum=0),
        InputField(name="is_foreign", type=FieldType.BOOL),
        InputField(name="device_age_days", type=FieldType.FLOAT, required=False, minimum=0),
    )
)
K = len(SCHEMA.fields)
OUTPUT = OutputSpec(name="probabilities", column=1)


def _training_data() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    rng = np.random.default_rng(3)
    x = np.column_stack(
        [
            rng.uniform(0, 2000, 400),
            rng.integers(0, 3000, 400),
            rng.integers(0, 2, 400),
            np.where(rng.random(400) < 0.2, np.nan, rng.uniform(0, 900, 400)),
        ]
    ).astype(np.float32)
    logit = x[:, 0] / 500 - x[:, 1] / 1500 + 1.5 * x[:, 2] - 2
    y = (rng.random(400) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return x, y


def _manifest(model: bytes, version: str, trainer: str) -> Manifest:
    """What an outside team does: score their golden rows with the exported model."""
    rows = random_rows(SCHEMA, n=12, seed=11)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    output = session.run([OUTPUT.name], RowCodec(SCHEMA).encode(rows))[0]
    scores = scores_from_output(OUTPUT, np.asarray(output))
    return Manifest(
        name="fraud",
        version=version,
        input_schema=SCHEMA,
        output=OUTPUT,
        thresholds=Thresholds(review=0.5, block=0.9),
        lineage=Lineage(trainer=trainer),
        golden_examples=tuple(
            GoldenExample(inputs=row, expected_score=float(s))
            for row, s in zip(rows, scores, strict=True)
        ),
    )


def _sklearn_onnx(zipmap: bool = False) -> tuple[bytes, Any, npt.NDArray[np.float32]]:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _training_data()
    clf = LogisticRegression(max_iter=200)
    pipe = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler()), ("clf", clf)])
    pipe.fit(x, y)
    onx = to_onnx(
        pipe,
        initial_types=[("numeric", FloatTensorType([None, K]))],
        options={id(clf): {"zipmap": zipmap}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return onx.SerializeToString(), pipe, x


def test_scikit_learn_pipeline_registers(registry: ModelRegistry) -> None:
    model, pipe, x = _sklearn_onnx()
    # The graph carries the preprocessing: it scores like the fitted pipeline, NaN included.
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    onnx_scores = session.run(["probabilities"], {"numeric": x[:50]})[0][:, 1]
    assert np.allclose(onnx_scores, pipe.predict_proba(x[:50])[:, 1], atol=1e-5)
    stored = registry.register(model, _manifest(model, "sk-1", "scikit-learn"), actor="ext")
    assert registry.state("fraud", "sk-1") is State.REGISTERED
    assert registry.artifact("fraud", "sk-1") == model
    assert stored.lineage.trainer == "scikit-learn"


def test_lightgbm_model_registers(registry: ModelRegistry) -> None:
    import lightgbm
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    x, y = _training_data()
    booster = lightgbm.LGBMClassifier(n_estimators=15, num_leaves=7, verbose=-1)
    booster.fit(x, y)
    onx = convert_lightgbm(
        booster,
        initial_types=[("numeric", FloatTensorType([None, K]))],
        zipmap=False,
        target_opset=15,  # the newest opset onnxmltools 1.16 converts LightGBM to
    )
    model = onx.SerializeToString()
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    onnx_scores = session.run(["probabilities"], {"numeric": x[:50]})[0][:, 1]
    expected = np.asarray(booster.predict_proba(x[:50]))[:, 1]
    assert np.allclose(onnx_scores, expected, atol=1e-5)
    registry.register(model, _manifest(model, "lgbm-1", "lightgbm"), actor="ext")
    assert registry.state("fraud", "lgbm-1") is State.REGISTERED
    assert registry.artifact("fraud", "lgbm-1") == model


def test_a_zipmap_output_is_refused_with_a_hint(registry: ModelRegistry) -> None:
    good, _, _ = _sklearn_onnx()
    zipped, _, _ = _sklearn_onnx(zipmap=True)
    manifest = _manifest(good, "sk-2", "scikit-learn").model_copy(
        update={"output": OutputSpec(name="output_probability", column=1)}
    )
    with pytest.raises(ValidationFailed) as caught:
        registry.register(zipped, manifest, actor="ext")
    assert str(caught.value) == (
        "model fraud:sk-2 refused: graph output 'output_probability' has type "
        "seq(map(int64,tensor(float))); expected a float tensor (for a scikit-learn "
        "classifier, export with zipmap disabled)"
    )
    assert registry.list() == []
