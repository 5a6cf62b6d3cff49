"""Models as outside teams export them, and their scores computed the way those teams would.

``native_scores`` feeds a graph in its *own* input layout (one array per column, or one
matrix), never through Shadowline's adapter, so comparing it with what the registry or the
scorer computes checks the adapter.  The exporters build small real models: a scikit-learn
pipeline over a pandas frame with named columns (one ONNX input per column), a LightGBM and an
XGBoost classifier over one float matrix.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from onnx import TensorProto

from registry.contract import RowCodec, scores_from_output
from registry.manifest import (
    FieldType,
    GoldenExample,
    InputField,
    InputSchema,
    Manifest,
    OutputSpec,
    Scalar,
    Thresholds,
)

if TYPE_CHECKING:
    import pandas as pd

_DTYPES: dict[int, Any] = {
    TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64, TensorProto.INT64: np.int64,
    TensorProto.INT32: np.int32, TensorProto.BOOL: np.bool_, TensorProto.STRING: object,
}  # fmt: skip
Row = dict[str, Scalar]


def native_scores(
    model: bytes, schema: InputSchema, rows: Sequence[Row], output: OutputSpec
) -> npt.NDArray[np.float64]:
    """Scores of ``rows`` with each graph input fed from the rows as its own type and shape."""
    proto = onnx.load_model_from_string(model)
    constants = {init.name for init in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in constants]
    if {i.name for i in inputs} <= {"numeric", "categorical"}:
        feeds = dict(RowCodec(schema).encode(rows))
    elif len(inputs) == 1 and inputs[0].name not in schema.names:
        matrix = [[_value(row.get(f.name), np.float64) for f in schema.numeric] for row in rows]
        elem = inputs[0].type.tensor_type.elem_type
        feeds = {inputs[0].name: np.array(matrix, dtype=_DTYPES[elem])}
    else:
        feeds = {}
        for value in inputs:
            elem = value.type.tensor_type.elem_type
            column = [_value(row.get(value.name), _DTYPES[elem]) for row in rows]
            array = np.array(column, dtype=_DTYPES[elem])
            rank = len(value.type.tensor_type.shape.dim)
            feeds[value.name] = array if rank == 1 else array.reshape(-1, 1)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    raw = session.run([output.name], feeds)[0]
    if isinstance(raw, list):  # a ZipMap: one {class: probability} per row
        raw = np.array([list(entry.values()) for entry in raw], dtype=np.float64)
    return scores_from_output(output, np.asarray(raw))


def _value(value: Scalar, dtype: Any) -> Any:
    if dtype is object:
        return "" if value is None else value
    if value is None:
        return math.nan
    return value


def manifest_for(
    model: bytes,
    schema: InputSchema,
    rows: Sequence[Row],
    *,
    version: str,
    output: OutputSpec,
    name: str = "fraud",
) -> Manifest:
    """A hand-written manifest whose golden examples the model scored in its own layout."""
    scores = native_scores(model, schema, rows, output)
    return Manifest(
        name=name,
        version=version,
        input_schema=schema,
        output=output,
        thresholds=Thresholds(review=0.5, block=0.9),
        golden_examples=tuple(
            GoldenExample(inputs=dict(row), expected_score=float(score))
            for row, score in zip(rows, scores, strict=True)
        ),
    )


def frame_rows(frame: pd.DataFrame) -> list[Row]:
    """The rows of ``frame`` as JSON-able dicts (NaN and None left out)."""
    rows: list[Row] = []
    for record in frame.to_dict("records"):
        row: Row = {}
        for key, value in record.items():
            item = value.item() if isinstance(value, np.generic) else value
            if item is None or (isinstance(item, float) and math.isnan(item)):
                continue
            row[str(key)] = item
        rows.append(row)
    return rows


# ------------------------------------------------------------------ real exporters

NUMERIC_COLUMNS = ("amount_usd", "account_age_days", "foreign_card")
STRING_COLUMNS = ("merchant_country", "channel", "device_os")


@functools.cache
def _training_frame(n: int = 400, seed: int = 3) -> tuple[pd.DataFrame, npt.NDArray[np.int64]]:
    """A pandas frame as a fraud team has it: float64 amounts (in cents, so float32 holds them
    exactly), int64 ages, a bool flag and three string columns; labels from a known rule."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "amount_usd": np.round(rng.uniform(1, 2000, n), 2),
            "account_age_days": rng.integers(0, 3000, n),
            "foreign_card": rng.random(n) < 0.3,
            "merchant_country": rng.choice(["US", "GB", "DE", "BR", "FR"], n),
            "channel": rng.choice(["web", "app", "pos"], n),
            "device_os": rng.choice(["ios", "android", "other"], n),
        }
    )
    logit = (
        frame["amount_usd"] / 600
        - frame["account_age_days"] / 1500
        + 1.5 * frame["foreign_card"]
        + 1.2 * (frame["merchant_country"] == "BR")
        - 2.5
    ).to_numpy()
    labels = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return frame, labels


def training_frame() -> pd.DataFrame:
    """A copy of the training frame (callers may edit it)."""
    return _training_frame()[0].copy()


def training_labels() -> npt.NDArray[np.int64]:
    """The training frame's labels (1 for fraud)."""
    return _training_frame()[1].copy()


@functools.cache
def sklearn_per_column(zipmap: bool = False) -> bytes:
    """A pipeline selecting pandas columns by name (scaling three numeric columns, one-hot
    encoding three string columns) and a random forest, exported by skl2onnx from the frame
    itself: one ONNX input per column (double, int64, bool, string)."""
    from skl2onnx import to_onnx
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, labels = _training_frame()
    columns = ColumnTransformer(
        [
            ("numbers", StandardScaler(), list(NUMERIC_COLUMNS)),
            ("strings", OneHotEncoder(handle_unknown="ignore"), list(STRING_COLUMNS)),
        ]
    )
    forest = RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0)
    pipeline = Pipeline([("columns", columns), ("forest", forest)]).fit(frame, labels)
    onx = to_onnx(
        pipeline,
        frame[:1],
        options={id(forest): {"zipmap": zipmap}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return bytes(onx.SerializeToString())


def _matrix() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    frame, labels = _training_frame()
    return frame[list(NUMERIC_COLUMNS)].to_numpy(dtype=np.float32), labels


@functools.cache
def lightgbm_matrix(input_name: str = "input") -> bytes:
    """LightGBM over the numeric columns, exported by onnxmltools: one float input [N, 3]."""
    import lightgbm
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    x, y = _matrix()
    booster = lightgbm.LGBMClassifier(n_estimators=15, num_leaves=7, verbose=-1).fit(x, y)
    onx = convert_lightgbm(
        booster,
        initial_types=[(input_name, FloatTensorType([None, x.shape[1]]))],
        zipmap=False,
        target_opset=15,  # the newest opset onnxmltools 1.16 converts LightGBM to
    )
    return bytes(onx.SerializeToString())


@functools.cache
def xgboost_matrix() -> bytes:
    """XGBoost over the numeric columns, exported by onnxmltools: one float input [N, 3]."""
    import xgboost
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    x, y = _matrix()
    booster = xgboost.XGBClassifier(n_estimators=15, max_depth=3, n_jobs=1).fit(x, y)
    onx = convert_xgboost(
        booster,
        initial_types=[("features", FloatTensorType([None, x.shape[1]]))],
        target_opset=15,
    )
    return bytes(onx.SerializeToString())


MATRIX_SCHEMA = InputSchema(
    fields=(
        InputField(name="amount_usd", type=FieldType.FLOAT, minimum=0),
        InputField(name="account_age_days", type=FieldType.INT, minimum=0),
        InputField(name="foreign_card", type=FieldType.BOOL),
    )
)
FRAME_SCHEMA = InputSchema(
    fields=(
        *MATRIX_SCHEMA.fields,
        *(InputField(name=name, type=FieldType.CATEGORICAL) for name in STRING_COLUMNS),
    )
)
PROBABILITIES = OutputSpec(name="probabilities", column=1)


def golden_rows(n: int = 12, offset: int = 0) -> list[Row]:
    """Rows of the training frame (the exported models' own columns)."""
    return frame_rows(training_frame()[offset : offset + n])


# ------------------------------------------------------------------ broken on purpose


def margin_model(model: bytes) -> bytes:
    """``model`` with its probabilities mapped to 10 p + 1.5."""
    proto = onnx.load_model_from_string(model)
    for node in proto.graph.node:
        node.output[:] = ["raw" if name == "probabilities" else name for name in node.output]
    proto.graph.initializer.extend(
        [
            onnx.helper.make_tensor("ten", onnx.TensorProto.FLOAT, [], [10.0]),
            onnx.helper.make_tensor("offset", onnx.TensorProto.FLOAT, [], [1.5]),
        ]
    )
    proto.graph.node.extend(
        [
            onnx.helper.make_node("Mul", ["raw", "ten"], ["scaled"]),
            onnx.helper.make_node("Add", ["scaled", "offset"], ["probabilities"]),
        ]
    )
    return bytes(proto.SerializeToString())


def float16_input(model: bytes, name: str) -> bytes:
    """``model`` declaring its input ``name`` as float16 (which nothing can feed)."""
    proto = onnx.load_model_from_string(model)
    for value in proto.graph.input:
        if value.name == name:
            value.type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    return bytes(proto.SerializeToString())
