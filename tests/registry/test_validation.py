"""Registration-time validation: each broken contract is refused with a message naming it."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from registry import ValidationFailed, validate_model
from registry.manifest import GoldenExample, Manifest, OutputSpec
from registry.validation import prepare_model
from tests.factories import DEFAULT_SCHEMA, logistic_model, make_manifest
from tests.registry.onnx_graphs import NUMERIC_SCHEMA, linear_graph

GOOD = linear_graph()
MANIFEST = make_manifest(GOOD, schema=NUMERIC_SCHEMA, version="v7")


def _refusal(artifact: bytes, manifest: Manifest = MANIFEST) -> list[str]:
    with pytest.raises(ValidationFailed) as caught:
        validate_model(artifact, manifest)
    assert str(caught.value) == "model fraud:v7 refused: " + "; ".join(caught.value.problems)
    return list(caught.value.problems)


def test_a_model_that_fulfils_its_contract_passes() -> None:
    validate_model(GOOD, MANIFEST)
    full = logistic_model()
    validate_model(full, make_manifest(full))  # numeric + categorical inputs


def test_not_onnx_at_all() -> None:
    assert _refusal(b"PK\x03\x04 a zip file, not a model") == [
        "not an ONNX model (it does not parse: Error parsing message with type "
        "'onnx.ModelProto': Wire format was corrupt)"
    ]
    assert _refusal(b"") == ["not an ONNX model (no IR version or no graph nodes)"]


def test_a_single_matrix_of_another_name_or_type_is_adapted() -> None:
    # One float or double input [N, k] holding the numeric fields in order: an adapter renames
    # or casts the packed input, and the golden rows (GOOD's: the same function) score the
    # same through it.
    for graph in (linear_graph(input_name="features"), linear_graph(elem_type=TensorProto.DOUBLE)):
        prepared = prepare_model(graph, MANIFEST)
        assert prepared.composed
        assert [i.name for i in onnx.load_model_from_string(prepared.artifact).graph.input] == [
            "numeric"
        ]


def test_wrong_input_width() -> None:
    assert _refusal(linear_graph(width=4)) == [
        "graph input 'numeric' has shape [N, 4]; expected float or double [N, 3] (the fields "
        "amount, card_age_days, is_foreign, in this order) with a dynamic batch dimension"
    ]


def test_missing_categorical_input() -> None:
    manifest = make_manifest(logistic_model(), version="v7")
    problems = _refusal(linear_graph(width=4), manifest)
    assert problems == [
        "graph input 'categorical' is missing (the schema has 2 categorical fields)"
    ]


def test_output_named_by_the_manifest_must_exist() -> None:
    assert _refusal(linear_graph(output_name="score")) == [
        "graph has no output 'probability' (outputs: score)"
    ]


def test_scores_outside_zero_one() -> None:
    problems = _refusal(linear_graph(sigmoid=False, weights=(0.01, 0.001, 1.0)))
    assert problems[0].startswith("golden example 0: score ")
    assert problems[0].endswith(" is outside [0, 1]")
    assert len(problems) == 6  # five shown, then a summary
    assert problems[-1].startswith("... and ")


def test_golden_scores_must_match() -> None:
    other = linear_graph(weights=(0.001, 0.0005, 1.2))
    problems = _refusal(other)
    first = problems[0]
    assert first.startswith("golden example 0: score 0.")
    assert "differs from the expected" in first
    assert first.endswith("(tolerance 0.0001)")


def test_golden_example_must_be_a_valid_row() -> None:
    examples = list(MANIFEST.golden_examples)
    examples[3] = GoldenExample(inputs={**examples[3].inputs, "amount": -5.0}, expected_score=0.1)
    manifest = MANIFEST.model_copy(update={"golden_examples": tuple(examples)})
    assert _refusal(GOOD, manifest) == ["golden example 3: amount: must be >= 0 (got -5)"]


def test_non_standard_operator_domain() -> None:
    assert _refusal(linear_graph(domain="com.microsoft")) == [
        "non-standard operator domain 'com.microsoft' (operators: Gelu); only '', 'ai.onnx' "
        "and 'ai.onnx.ml' can run in the scorer"
    ]


def test_output_column_out_of_range() -> None:
    manifest = MANIFEST.model_copy(update={"output": OutputSpec(name="probability", column=3)})
    assert _refusal(GOOD, manifest) == ["output probability has 1 columns; column 3 requested"]


def test_schema_and_model_of_different_shapes() -> None:
    manifest = make_manifest(logistic_model(), version="v7")
    assert DEFAULT_SCHEMA.numeric != NUMERIC_SCHEMA.numeric
    assert _refusal(GOOD, manifest) == [
        "graph input 'numeric' has shape [N, 3]; expected [N, 4] "
        "(dynamic batch dimension, one column per field)",
        "graph input 'categorical' is missing (the schema has 2 categorical fields)",
    ]


def _model(
    nodes: list[onnx.NodeProto],
    *,
    shape: list[int | None] | None = None,
    initializers: list[onnx.TensorProto] | None = None,
) -> bytes:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("numeric", TensorProto.FLOAT, shape or [None, 3])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N", "K"])],
        initializers or [],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def test_fixed_batch_dimension() -> None:
    fixed = _model([helper.make_node("Sigmoid", ["numeric"], ["probability"])], shape=[1, 3])
    assert _refusal(fixed) == [
        "graph input 'numeric' has shape [1, 3]; expected float or double [N, 3] (the fields "
        "amount, card_age_days, is_foreign, in this order) with a dynamic batch dimension"
    ]


def test_onnx_checker_refusal() -> None:
    dangling = _model([helper.make_node("Sigmoid", ["nowhere"], ["probability"])])
    (problem,) = _refusal(dangling)
    assert problem.startswith("onnx.checker refused it: Nodes in a graph must be topologically")


def test_onnxruntime_refusal() -> None:
    # Float + int64 passes onnx.checker (no type inference) but not onnxruntime.
    mixed = _model(
        [helper.make_node("Add", ["numeric", "one"], ["probability"])],
        initializers=[helper.make_tensor("one", TensorProto.INT64, [], [1])],
    )
    (problem,) = _refusal(mixed)
    assert problem.startswith("onnxruntime cannot load it: ")
    assert "Type parameter (T) of Optype (Add) bound to different types" in problem


def test_runtime_failure_on_the_golden_rows() -> None:
    # 12 golden rows x 3 columns cannot be reshaped to 5 rows.
    reshape = _model(
        [
            helper.make_node("Reshape", ["numeric", "shape"], ["reshaped"]),
            helper.make_node("Sigmoid", ["reshaped"], ["probability"]),
        ],
        initializers=[helper.make_tensor("shape", TensorProto.INT64, [2], [5, -1])],
    )
    (problem,) = _refusal(reshape)
    assert problem.startswith("running the golden examples failed: ")


def test_non_standard_operator_inside_a_subgraph() -> None:
    def branch(domain: str) -> onnx.GraphProto:
        return helper.make_graph(
            [helper.make_node("Gelu", ["numeric"], ["out"], domain=domain)],
            f"branch_{domain or 'std'}",
            [],
            [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", "K"])],
        )

    model = helper.make_model(
        helper.make_graph(
            [
                helper.make_node("ReduceMax", ["numeric"], ["m"], keepdims=0),
                helper.make_node("Cast", ["m"], ["cond"], to=TensorProto.BOOL),
                helper.make_node(
                    "If",
                    ["cond"],
                    ["probability"],
                    then_branch=branch("com.example"),
                    else_branch=branch("com.example"),
                ),
            ],
            "g",
            [helper.make_tensor_value_info("numeric", TensorProto.FLOAT, [None, 3])],
            [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N", "K"])],
        ),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)],
    )
    assert _refusal(model.SerializeToString()) == [
        "non-standard operator domain 'com.example' (operators: Gelu); only '', 'ai.onnx' "
        "and 'ai.onnx.ml' can run in the scorer"
    ]
