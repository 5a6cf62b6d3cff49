"""The benchmark model: LightGBM, ~200 trees on 30 numeric inputs, exported to ONNX.

Trained on seeded synthetic data, converted with onnxmltools and given a small post-step (a
Slice of column 1 of ``probabilities``) so that it follows the Shadowline convention exactly:
one input ``numeric`` float32 [N, 30], one output ``probability`` float32 [N, 1].  Variants
(distinct artifacts, same trees) serve as shadows and as promotion targets: they differ only
in the graph's doc string, so each has its own sha256 and costs the same to load and run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

N_FEATURES = 30
N_TREES = 200
# The shedding ramp's heavy shadow: ten times the trees, about ten times the inference cost
# (79 us a row in batches of 64 against 8 for the 200 trees, one thread, the bench machine),
# so that the sidecar's capacity falls below the scorer's maximum and shedding can be seen.
HEAVY_TREES = 2000
HEAVY = ("h1", "h2", "h3")  # its versions in the bench's registry (variants: distinct artifacts)
FIELD_NAMES = tuple(f"f{i:02d}" for i in range(N_FEATURES))

if TYPE_CHECKING:
    from registry.manifest import Manifest


@dataclass(frozen=True)
class BenchModel:
    onnx_bytes: bytes
    train_rows: int
    n_trees: int


def synthetic_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features ~ N(0, 1); fraud is a noisy nonlinear function of a few of them (~3%)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, N_FEATURES)).astype(np.float32)
    logit = 1.2 * x[:, 0] - 0.8 * x[:, 1] * x[:, 2] + 0.9 * np.abs(x[:, 3]) + 0.5 * x[:, 4] - 5.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int32)
    return x, y


def train(seed: int = 7, rows: int = 20_000, trees: int = N_TREES) -> BenchModel:
    """Train the model and export it (a few seconds on 2 cores)."""
    import lightgbm as lgb
    import onnx
    from onnx import TensorProto, helper
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    x, y = synthetic_data(rows, seed)
    clf = lgb.LGBMClassifier(
        n_estimators=trees,
        num_leaves=31,
        learning_rate=0.05,
        random_state=seed,
        n_jobs=1,
        verbose=-1,
    )
    clf.fit(x, y)
    model = convert_lightgbm(
        clf,
        initial_types=[("numeric", FloatTensorType([None, N_FEATURES]))],
        zipmap=False,
        target_opset=15,
    )
    graph = model.graph
    probs = next(o.name for o in graph.output if o.name != "label")
    graph.initializer.extend(
        [
            helper.make_tensor("col_start", TensorProto.INT64, [1], [1]),
            helper.make_tensor("col_end", TensorProto.INT64, [1], [2]),
            helper.make_tensor("col_axis", TensorProto.INT64, [1], [1]),
        ]
    )
    graph.node.append(
        helper.make_node("Slice", [probs, "col_start", "col_end", "col_axis"], ["probability"])
    )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("probability", TensorProto.FLOAT, [None, 1]))
    # The converter declares the default domain at the lowest opset its nodes need; Slice with
    # tensor inputs needs opset >= 10.
    default = [op for op in model.opset_import if op.domain in ("", "ai.onnx")]
    if default:
        default[0].version = max(default[0].version, 15)
    else:
        model.opset_import.append(helper.make_opsetid("", 15))
    onnx.checker.check_model(model)
    return BenchModel(model.SerializeToString(), rows, trees)


def variant(onnx_bytes: bytes, tag: str) -> bytes:
    """The same model as a distinct artifact (another sha256): only the doc string differs."""
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    model.doc_string = f"shadowline benchmark variant {tag}"
    return bytes(model.SerializeToString())


def sample_rows(n: int, seed: int) -> list[dict[str, float]]:
    """Request rows from the training distribution, rounded as a client would send them."""
    rng = random.Random(seed)
    return [{name: round(rng.gauss(0, 1), 4) for name in FIELD_NAMES} for _ in range(n)]


def manifest_for(
    onnx_bytes: bytes, version: str, name: str = "fraud", trees: int = N_TREES
) -> Manifest:
    """A Shadowline manifest (registry.manifest.Manifest) with 12 golden examples scored by
    onnxruntime."""
    import onnxruntime as ort

    from registry.manifest import (
        FieldType,
        GoldenExample,
        InputField,
        InputSchema,
        Lineage,
        Manifest,
        Thresholds,
    )

    schema = InputSchema(
        fields=tuple(
            InputField(name=n, type=FieldType.FLOAT, minimum=-100.0, maximum=100.0)
            for n in FIELD_NAMES
        )
    )
    rows = sample_rows(12, seed=99)
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    feed = np.array([[r[n] for n in FIELD_NAMES] for r in rows], dtype=np.float32)
    scores = session.run(["probability"], {"numeric": feed})[0][:, 0]
    return Manifest(
        name=name,
        version=version,
        description=f"make bench: LightGBM, {trees} trees, 30 numeric inputs",
        input_schema=schema,
        thresholds=Thresholds(review=0.2, block=0.6),
        golden_examples=tuple(
            GoldenExample(inputs=dict(r), expected_score=float(s))
            for r, s in zip(rows, scores, strict=True)
        ),
        metrics={"trees": float(trees)},
        lineage=Lineage(trainer="benchmarks/model.py"),
    )
