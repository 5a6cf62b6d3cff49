"""Input layouts other than the packed one register through an adapter; the rest is refused.

Each accepted graph is compared, row by row, with the same graph fed in its own layout.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from registry import ValidationFailed
from registry.adapter import ADAPTER_KEY
from registry.layouts import SUPPORTED_LAYOUTS
from registry.manifest import (
    FieldType,
    GoldenExample,
    InputField,
    InputSchema,
    Manifest,
    OutputSpec,
    Thresholds,
)
from registry.validation import PreparedModel, prepare_model
from tests.exported_models import manifest_for, native_scores
from tests.factories import random_rows
from tests.registry.onnx_graphs import Column, per_column_graph

F, D, I64, I32, B, S = (
    TensorProto.FLOAT,
    TensorProto.DOUBLE,
    TensorProto.INT64,
    TensorProto.INT32,
    TensorProto.BOOL,
    TensorProto.STRING,
)
OUT = OutputSpec(name="probability")
SCHEMA = InputSchema(
    fields=(
        InputField(name="amount", type=FieldType.FLOAT, minimum=0),
        InputField(name="card_age_days", type=FieldType.INT, minimum=0),
        InputField(name="is_foreign", type=FieldType.BOOL),
        InputField(name="device_age_days", type=FieldType.FLOAT, required=False, minimum=0),
        InputField(name="country", type=FieldType.CATEGORICAL, allowed=("US", "GB", "DE", "BR")),
        InputField(name="channel", type=FieldType.CATEGORICAL, required=False),
    )
)
# One input per field, as skl2onnx exports a pandas frame: float64, int64, bool, strings.
PANDAS_LIKE: list[Column] = [
    ("amount", D, [None, 1]), ("card_age_days", I64, [None, 1]), ("is_foreign", B, [None, 1]),
    ("device_age_days", D, [None, 1]), ("country", S, [None, 1]), ("channel", S, [None, 1]),
]  # fmt: skip


def _prepared(
    columns: list[Column],
    schema: InputSchema = SCHEMA,
    *,
    concat: bool = True,
    inner: str = "merged",
) -> PreparedModel:
    """Register-time preparation; asserts the composed graph scores like the graph itself."""
    model = per_column_graph(columns, concat=concat, inner=inner)
    rows = random_rows(schema, n=12, seed=4)
    prepared = prepare_model(model, manifest_for(model, schema, rows, version="v1", output=OUT))
    composed = onnx.load_model_from_string(prepared.artifact)
    packed = [i.name for i in composed.graph.input]
    assert packed == [n for n in ("numeric", "categorical") if n in _needed(schema)]
    ours = native_scores(prepared.artifact, schema, rows, OUT)
    theirs = native_scores(model, schema, rows, OUT)
    assert np.abs(ours - theirs).max() <= 1e-6
    return prepared


def _needed(schema: InputSchema) -> set[str]:
    return {
        name
        for name, fields in (("numeric", schema.numeric), ("categorical", schema.categorical))
        if fields
    }


def _ops(prepared: PreparedModel) -> list[str]:
    return [node.op_type for node in onnx.load_model_from_string(prepared.artifact).graph.node]


def _refusal(columns: list[Column], schema: InputSchema = SCHEMA) -> list[str]:
    return _refusal_of(per_column_graph(columns), schema)


def test_one_input_per_field_of_every_type() -> None:
    prepared = _prepared(PANDAS_LIKE)
    assert prepared.composed
    assert prepared.layout == "per-column (6 inputs)"
    assert prepared.source == per_column_graph(PANDAS_LIKE)
    metadata = {
        p.key: p.value for p in onnx.load_model_from_string(prepared.artifact).metadata_props
    }
    assert metadata == {ADAPTER_KEY: "per-column (6 inputs)"}


def test_concatenated_columns_are_read_in_one_gather() -> None:
    # The numeric columns are cast and concatenated (in another order than the manifest's):
    # the adapter reads them in one Gather of the packed tensor instead of four Gathers, four
    # Casts and the Concat.
    reordered = [PANDAS_LIKE[i] for i in (1, 0, 3, 2, 4, 5)]
    ops = _ops(_prepared(reordered))
    assert "Concat" not in ops
    assert ops.count("Gather") == 3  # the numeric matrix, then one per string column
    assert ops.count("Cast") == 0
    # All of them in manifest order: the matrix is the packed tensor, read with no node.
    assert _ops(_prepared(PANDAS_LIKE)).count("Gather") == 2


def test_a_float_matrix_of_all_columns_is_the_packed_tensor_itself() -> None:
    schema = InputSchema(fields=SCHEMA.numeric)
    columns: list[Column] = [(f.name, F, [None, 1]) for f in schema.fields]
    ops = _ops(_prepared(columns, schema))
    assert ops == ["IsNaN", "Where", "MatMul", "Sum", "Sigmoid"]  # no Gather, no Concat


def test_columns_read_twice_or_of_other_types_go_one_by_one() -> None:
    # int32 and rank-1 inputs, and columns weighted one by one: a Gather (and Cast) each.
    columns: list[Column] = [
        ("amount", F, [None]),
        ("card_age_days", I32, [None, 1]),
        ("is_foreign", F, [None, 1]),
        ("device_age_days", D, [None]),
        ("country", S, [None]),
        ("channel", S, [None, 1]),
    ]
    ops = _ops(_prepared(columns, concat=False))
    assert ops.count("Gather") == 6
    assert ops.count("Cast") == 2 + 2  # the adapter's (int32, double) and the graph's own
    folded = _ops(_prepared(columns))
    assert "Concat" in folded  # int32 is never folded: a large whole float has no int32 form


def test_a_graph_tensor_named_like_a_packed_input_is_renamed() -> None:
    prepared = _prepared(
        PANDAS_LIKE[:3] + PANDAS_LIKE[4:], _schema_without("device_age_days"), inner="numeric"
    )
    assert "numeric" in [i.name for i in onnx.load_model_from_string(prepared.artifact).graph.input]


def _schema_without(name: str) -> InputSchema:
    return InputSchema(fields=tuple(f for f in SCHEMA.fields if f.name != name))


def test_an_input_read_inside_a_subgraph() -> None:
    # An If whose branches read the per-column input 'amount' from the outer graph.
    def branch(scale: float) -> onnx.GraphProto:
        return helper.make_graph(
            [helper.make_node("Mul", ["amount", f"k{scale}"], ["out"])],
            f"branch{scale}",
            [],
            [helper.make_tensor_value_info("out", F, [None, 1])],
            [helper.make_tensor(f"k{scale}", F, [], [scale])],
        )

    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["yes"], value=helper.make_tensor("c", B, [], [1])),
            helper.make_node(
                "If", ["yes"], ["scaled"], then_branch=branch(1e-3), else_branch=branch(0.0)
            ),
            helper.make_node("Sigmoid", ["scaled"], ["probability"]),
        ],
        "g",
        [helper.make_tensor_value_info("amount", F, [None, 1])],
        [helper.make_tensor_value_info("probability", F, [None, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    artifact = model.SerializeToString()
    schema = InputSchema(fields=(SCHEMA.fields[0],))
    rows = random_rows(schema, n=12, seed=2)
    prepared = prepare_model(
        artifact, manifest_for(artifact, schema, rows, version="v1", output=OUT)
    )
    assert prepared.layout == "per-column (1 inputs)"


def test_an_input_that_is_no_field_is_named_with_a_hint() -> None:
    columns = [("amount_usd", D, [None, 1]), *PANDAS_LIKE[1:]]
    assert _refusal(columns) == [
        "graph input 'amount_usd' has no manifest field of that name (rename the field 'amount'?)",
        "manifest field 'amount' has no graph input (each field needs one, named as the field)",
    ]


def test_types_that_do_not_fit_the_field() -> None:
    columns: list[Column] = [
        ("amount", I64, [None, 1]),
        ("card_age_days", S, [None, 1]),
        ("is_foreign", B, [None, 1]),
        ("device_age_days", I64, [None, 1]),
        ("country", I64, [None, 1]),
        ("channel", S, [None, 1]),
    ]
    assert _refusal(columns) == [
        "graph input 'amount' is tensor(int64) but field 'amount' is float (sent as a number): "
        "declare the field int, or export the input as a float tensor",
        "graph input 'card_age_days' is tensor(string) but field 'card_age_days' is int (sent as "
        "a number): declare the field categorical, or export the input as a float tensor",
        "graph input 'device_age_days' is tensor(int64) but field 'device_age_days' is float "
        "(sent as a number): declare the field int, or export the input as a float tensor",
        "graph input 'country' is tensor(int64) but field 'country' is categorical (sent as a "
        "string): declare the field int or float, or export the input as a string tensor",
    ]


def test_an_optional_field_cannot_feed_an_integer_input() -> None:
    schema = InputSchema(
        fields=(InputField(name="card_age_days", type=FieldType.INT, required=False),)
    )
    assert _refusal([("card_age_days", I64, [None, 1])], schema) == [
        "graph input 'card_age_days' is tensor(int64) but field 'card_age_days' is optional: a "
        "missing value (NaN) has no tensor(int64) form; make the field required, or export the "
        "input as float"
    ]


def test_unsupported_element_types_and_shapes_list_the_layouts() -> None:
    columns: list[Column] = [
        ("amount", TensorProto.FLOAT16, [None, 1]),
        ("card_age_days", I64, [None, 3]),
    ]
    schema = InputSchema(fields=SCHEMA.fields[:2])
    assert _refusal(columns, schema) == [
        "graph input 'amount' has element type tensor(float16), which Shadowline cannot feed "
        "(float, double, int64, int32, bool or string)",
        "graph input 'card_age_days' has shape [N, 3]; a per-field input must be [N, 1] or [N] "
        "with a dynamic batch dimension",
        SUPPORTED_LAYOUTS,
    ]


def test_one_matrix_cannot_carry_categorical_fields() -> None:
    assert _refusal([("features", F, [None, 4])]) == [
        "graph has one input 'features' but the schema has categorical fields (country, "
        f"channel), which a single tensor cannot carry; {SUPPORTED_LAYOUTS}"
    ]


def test_an_old_default_opset_is_refused_and_a_missing_one_added() -> None:
    sigmoid = helper.make_graph(
        [helper.make_node("Sigmoid", ["amount"], ["probability"])],
        "old",
        [helper.make_tensor_value_info("amount", D, [None, 1])],
        [helper.make_tensor_value_info("probability", D, [None, 1])],
    )
    old = helper.make_model(sigmoid, opset_imports=[helper.make_opsetid("", 8)])
    old.ir_version = 3
    assert _refusal_of(old.SerializeToString(), InputSchema(fields=SCHEMA.fields[:1])) == [
        "the graph imports opset 8 of the default domain; the input adapter needs opset 9 or "
        "later (export with a newer target_opset)"
    ]
    # Only ai.onnx.ml operators: the adapter's Gather brings its own default-domain import.
    encoder = helper.make_node(
        "LabelEncoder",
        ["country"],
        ["probability"],
        domain="ai.onnx.ml",
        keys_strings=["BR"],
        values_floats=[0.9],
        default_float=0.1,
    )
    graph = helper.make_graph(
        [encoder],
        "ml_only",
        [helper.make_tensor_value_info("country", S, [None, 1])],
        [helper.make_tensor_value_info("probability", F, [None, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("ai.onnx.ml", 2)])
    model.ir_version = 8
    schema = InputSchema(fields=(SCHEMA.fields[4],))
    artifact = model.SerializeToString()
    rows = random_rows(schema, n=10, seed=1)
    prepared = prepare_model(
        artifact, manifest_for(artifact, schema, rows, version="v1", output=OUT)
    )
    imports = onnx.load_model_from_string(prepared.artifact).opset_import
    assert {(op.domain, op.version) for op in imports} == {("ai.onnx.ml", 2), ("", 9)}


def _refusal_of(model: bytes, schema: InputSchema = SCHEMA) -> list[str]:
    # Refused before any golden example runs, so their expected scores do not matter.
    rows = random_rows(schema, n=10)
    manifest = Manifest(
        name="fraud",
        version="v1",
        input_schema=schema,
        thresholds=Thresholds(review=0.5, block=0.9),
        golden_examples=tuple(GoldenExample(inputs=row, expected_score=0.5) for row in rows),
    )
    with pytest.raises(ValidationFailed) as caught:
        prepare_model(model, manifest)
    return list(caught.value.problems)


def test_a_single_input_must_be_a_float_matrix_of_the_numeric_fields() -> None:
    schema = InputSchema(fields=SCHEMA.numeric)
    fields = "amount, card_age_days, is_foreign, device_age_days"
    assert _refusal([("features", S, [None, 4])], schema) == [
        f"graph input 'features' is tensor(string); expected float or double [N, 4] (the fields "
        f"{fields}, in this order); {SUPPORTED_LAYOUTS}"
    ]
    assert _refusal([("features", F, [None, 5])], schema) == [
        f"graph input 'features' has shape [N, 5]; expected float or double [N, 4] (the fields "
        f"{fields}, in this order) with a dynamic batch dimension"
    ]


def test_packed_inputs_the_schema_does_not_need() -> None:
    schema = InputSchema(fields=SCHEMA.numeric)
    columns: list[Column] = [("numeric", F, [None, 4]), ("categorical", S, [None, 1])]
    assert _refusal(columns, schema) == [
        "graph has an unexpected input 'categorical' (the schema needs exactly: numeric)"
    ]
