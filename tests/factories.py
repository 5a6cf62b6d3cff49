"""Tiny real ONNX models and their manifests, for tests of the registry and the scorer.

``logistic_model`` builds a graph that follows the Shadowline input convention (``numeric``
float32 [N, k], ``categorical`` string [N, m]): missing numerics become 0, each categorical
value is mapped to a weight by an ``ai.onnx.ml`` LabelEncoder, and the sum goes through a
sigmoid.  ``make_manifest`` runs the real model with onnxruntime to fill the golden examples.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from registry.contract import CATEGORICAL_INPUT, NUMERIC_INPUT, RowCodec, scores_from_output
from registry.evidence import (
    ControlComparison,
    Flip,
    Interval,
    LabelFree,
    Maturity,
    MetricEstimate,
    Quantiles,
    ShadowEvidence,
)
from registry.manifest import (
    FieldType,
    GoldenExample,
    InputField,
    InputSchema,
    Manifest,
    Scalar,
    Thresholds,
)

OPSET = 17

DEFAULT_SCHEMA = InputSchema(
    fields=(
        InputField(name="amount", type=FieldType.FLOAT, minimum=0, maximum=1_000_000),
        InputField(name="card_age_days", type=FieldType.INT, minimum=0),
        InputField(name="is_foreign", type=FieldType.BOOL),
        InputField(name="device_age_days", type=FieldType.FLOAT, required=False, minimum=0),
        InputField(name="country", type=FieldType.CATEGORICAL, allowed=("US", "GB", "DE", "BR")),
        InputField(name="merchant_category", type=FieldType.CATEGORICAL, required=False),
    )
)

# Numeric fields only: the layout the scorer's shortcut (RowCodec.numeric_row) serves.
NUMERIC_SCHEMA = InputSchema(
    fields=(
        InputField(name="amount", type=FieldType.FLOAT, minimum=0, maximum=1_000_000),
        InputField(name="card_age_days", type=FieldType.INT, minimum=0),
        InputField(name="is_foreign", type=FieldType.BOOL),
        InputField(name="device_age_days", type=FieldType.FLOAT, required=False),
    )
)


def logistic_model(
    schema: InputSchema = DEFAULT_SCHEMA,
    *,
    weights: Sequence[float] | None = None,
    bias: float = -2.0,
    category_weights: dict[str, float] | None = None,
) -> bytes:
    """Serialized ONNX bytes of a logistic model over ``schema``; different weights give a
    different model (and a different sha256)."""
    numeric, categorical = schema.numeric, schema.categorical
    weights = list(weights) if weights is not None else [0.001] * len(numeric)
    inputs, initializers, nodes, terms = [], [], [], []
    if numeric:
        inputs.append(
            helper.make_tensor_value_info(NUMERIC_INPUT, TensorProto.FLOAT, [None, len(numeric)])
        )
        initializers += [
            helper.make_tensor("w", TensorProto.FLOAT, [len(numeric), 1], weights),
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        ]
        nodes += [
            helper.make_node("IsNaN", [NUMERIC_INPUT], ["nan_mask"]),
            helper.make_node("Where", ["nan_mask", "zero", NUMERIC_INPUT], ["filled"]),
            helper.make_node("MatMul", ["filled", "w"], ["num_term"]),
        ]
        terms.append("num_term")
    if categorical:
        mapping = category_weights or {"BR": 1.5, "DE": 0.2}
        inputs.append(
            helper.make_tensor_value_info(
                CATEGORICAL_INPUT, TensorProto.STRING, [None, len(categorical)]
            )
        )
        nodes += [
            helper.make_node(
                "LabelEncoder",
                [CATEGORICAL_INPUT],
                ["cat_values"],
                domain="ai.onnx.ml",
                keys_strings=list(mapping),
                values_floats=list(mapping.values()),
                default_float=0.0,
            ),
            helper.make_node("ReduceSum", ["cat_values", "axis1"], ["cat_term"], keepdims=1),
        ]
        initializers.append(helper.make_tensor("axis1", TensorProto.INT64, [1], [1]))
        terms.append("cat_term")
    initializers.append(helper.make_tensor("bias", TensorProto.FLOAT, [], [bias]))
    nodes += [
        helper.make_node("Sum", [*terms, "bias"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["probability"]),
    ]
    output = helper.make_tensor_value_info("probability", TensorProto.FLOAT, [None, 1])
    graph = helper.make_graph(nodes, "shadowline_test_logistic", inputs, [output], initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", 3)],
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def random_rows(
    schema: InputSchema = DEFAULT_SCHEMA, n: int = 12, seed: int = 7
) -> list[dict[str, Scalar]]:
    """Valid rows for ``schema`` (optional fields sometimes missing)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        row: dict[str, Scalar] = {}
        for field in schema.fields:
            if not field.required and rng.random() < 0.3:
                continue
            # Within the field's range (the same draws as before for a field without one).
            low = 0 if field.minimum is None else max(0, math.ceil(field.minimum))
            if field.type is FieldType.BOOL:
                row[field.name] = rng.random() < 0.5
            elif field.type is FieldType.INT:
                high = 3000 if field.maximum is None else min(3000, math.floor(field.maximum))
                row[field.name] = rng.randint(low, high)
            elif field.type is FieldType.FLOAT:
                top = 2000.0 if field.maximum is None else min(2000.0, field.maximum)
                row[field.name] = round(rng.uniform(low, top), 2)
            else:
                row[field.name] = rng.choice(field.allowed or ("grocery", "travel", "gaming"))
        rows.append(row)
    return rows


def score_rows(model: bytes, schema: InputSchema, rows: list[dict[str, Scalar]]) -> list[float]:
    """Score ``rows`` with the real model through onnxruntime."""
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    feeds = RowCodec(schema).encode(rows)
    output = session.run(["probability"], feeds)[0]
    return [
        float(x)
        for x in scores_from_output(Manifest.model_fields["output"].default, np.asarray(output))
    ]


def make_manifest(
    model: bytes,
    *,
    name: str = "fraud",
    version: str = "v1",
    schema: InputSchema = DEFAULT_SCHEMA,
    with_sha: bool = False,
    **extra: object,
) -> Manifest:
    """A valid manifest for ``model`` whose golden examples are the model's real scores."""
    rows = random_rows(schema)
    scores = score_rows(model, schema, rows)
    fields: dict[str, object] = {
        "name": name,
        "version": version,
        "input_schema": schema,
        "thresholds": Thresholds(review=0.5, block=0.9),
        "golden_examples": tuple(
            GoldenExample(inputs=row, expected_score=score)
            for row, score in zip(rows, scores, strict=True)
        ),
        "metrics": {"roc_auc": 0.9},
    }
    if with_sha:
        fields["sha256"] = hashlib.sha256(model).hexdigest()
    fields.update(extra)
    return Manifest.model_validate(fields)


def make_evidence(
    production: str | None = "v1",
    *,
    compared: int = 5000,
    matured_frauds: int = 120,
    challenger: float = 0.81,
    production_value: float | None = 0.80,
    low: float = -0.005,
    high: float = 0.025,
    maturity: float = 0.93,
    source: str = "live",
    with_metrics: bool = False,
    with_signals: bool = False,
    control: float | None = None,
    **changes: object,
) -> ShadowEvidence:
    """Recorded evidence as the analysis writes it: the primary metric for both models, the
    paired difference's interval [low, high] (also the decision bound), label maturity.

    ``with_metrics`` adds every labeled metric with its intervals (the primary one's are
    ``challenger``, ``production_value`` and [low, high]); ``with_signals`` the label-free
    signals (agreement, flips with money, rates, latency); ``control`` a control shadow whose
    difference with production is ``control`` (interval +-0.012).
    """
    if production is None:
        production_value = None  # a first model: nothing to compare with
    difference = None if production_value is None else challenger - production_value
    fields: dict[str, object] = {
        "source": source,
        "production_version": production,
        "shadow_records": compared,
        "labeled_records": compared // 2,
        "matured_records": compared // 2,
        "matured_frauds": matured_frauds,
        "challenger_value": challenger,
        "production_value": production_value,
        "difference": difference,
        "difference_ci": None if difference is None else Interval(low=low, high=high),
        "decision_low": None if difference is None else low,
        "decision_level": None if difference is None else 0.975,
        "maturity": Maturity(
            window_s=14 * 86400.0, window_from="curve", expected_share_matured=maturity
        ),
    }
    if with_metrics and production_value is not None:
        fields["metrics"] = _metric_estimates(
            challenger, production_value, low, high, matured_frauds, compared // 2
        )
    if with_signals:
        fields["label_free"] = _label_free(compared)
    if control is not None and difference is not None:
        versus = difference - control
        fields["control"] = ControlComparison(
            version=f"{production}-control",
            control_difference=control,
            control_difference_ci=Interval(low=control - 0.012, high=control + 0.012),
            versus_control=versus,
            versus_control_ci=Interval(low=versus - 0.015, high=versus + 0.015),
            transactions=compared // 2,
            frauds=matured_frauds,
            beyond_noise=versus - 0.015 > 0,
            verdict=(
                "the challenger's difference is larger than retraining alone produces"
                if versus - 0.015 > 0
                else "the challenger's difference is within what retraining alone produces"
            ),
        )
    fields.update(changes)
    return ShadowEvidence.model_validate(fields)


def _metric_estimates(
    challenger: float, production: float, low: float, high: float, frauds: int, n: int
) -> tuple[MetricEstimate, ...]:
    primary = MetricEstimate(
        name="fraud_caught_at_block_rate",
        challenger=challenger,
        production=production,
        difference=challenger - production,
        challenger_ci=Interval(low=challenger - 0.03, high=challenger + 0.03),
        production_ci=Interval(low=production - 0.03, high=production + 0.03),
        difference_ci=Interval(low=low, high=high),
        frauds=frauds,
        transactions=n,
    )
    auc = MetricEstimate(
        name="auc",
        challenger=0.934,
        production=0.921,
        difference=0.013,
        challenger_ci=Interval(low=0.921, high=0.947),
        production_ci=Interval(low=0.907, high=0.935),
        difference_ci=Interval(low=0.004, high=0.022),
        frauds=frauds,
        transactions=n,
    )
    money = MetricEstimate(
        name="money_saved_at_block_rate",
        challenger=48210.0,
        production=45020.0,
        difference=3190.0,
        difference_ci=Interval(low=-1250.0, high=7630.0),
        frauds=frauds,
        transactions=n,
    )
    return primary, auc, money


def _label_free(compared: int) -> LabelFree:
    return LabelFree(
        transactions=compared,
        sampled=compared + 40,
        agreement=0.971,
        rank_correlation=0.912,
        psi=0.031,
        ks=0.045,
        error_rate=0.0004,
        timeout_rate=0.0002,
        busy_rate=0.0,
        shed_rate=0.001,
        flips=(
            Flip(production="allow", challenger="allow", count=compared - 160, amount=812345.5),
            Flip(production="allow", challenger="block", count=37, amount=5120.0),
            Flip(production="block", challenger="allow", count=21, amount=2380.25),
            Flip(production="block", challenger="block", count=102, amount=30999.0),
        ),
        challenger_latency_ms=Quantiles(p50=1.2, p95=2.9, p99=4.4),
        production_latency_ms=Quantiles(p50=0.8, p95=1.7, p99=2.6),
    )


def flip_stored_byte(root: Path, sha256: str, offset: int = -40) -> Path:
    """Flip one bit of the artifact stored under ``sha256`` in a ``FileArtifactStore`` at
    ``root`` (as a failing disk would) and return its path.  The default offset lands in the
    graph's weights near the end of the file."""
    path = root / sha256[:2] / sha256
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.chmod(0o644)  # stored read-only
    path.write_bytes(bytes(data))
    return path
