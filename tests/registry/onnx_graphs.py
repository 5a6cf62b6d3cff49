"""Hand-built ONNX graphs that break the model contract in one specific way each."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from registry.manifest import FieldType, InputField, InputSchema

NUMERIC_SCHEMA = InputSchema(
    fields=(
        InputField(name="amount", type=FieldType.FLOAT, minimum=0),
        InputField(name="card_age_days", type=FieldType.INT, minimum=0),
        InputField(name="is_foreign", type=FieldType.BOOL),
    )
)


def linear_graph(
    *,
    input_name: str = "numeric",
    elem_type: int = TensorProto.FLOAT,
    width: int = 3,
    weights: tuple[float, ...] = (0.001, 0.0005, 1.0),
    sigmoid: bool = True,
    output_name: str = "probability",
    domain: str = "",
) -> bytes:
    """``sigmoid(numeric @ w - 2)`` over a [N, width] input, with one knob turned per test."""
    weights = weights[:width] + (0.0,) * max(0, width - len(weights))
    cast_to = TensorProto.DOUBLE if elem_type == TensorProto.DOUBLE else TensorProto.FLOAT
    nodes = [
        helper.make_node("MatMul", [input_name, "w"], ["dot"]),
        helper.make_node("Add", ["dot", "bias"], ["logit"]),
    ]
    last = "logit"
    if sigmoid:
        nodes.append(helper.make_node("Sigmoid", ["logit"], ["prob"]))
        last = "prob"
    if domain:
        # A contrib operator: onnxruntime would run it, but it is not a standard operator.
        nodes.append(helper.make_node("Gelu", [last], ["gelu"], domain=domain))
        nodes.append(helper.make_node("Mul", ["gelu", "zero"], ["nothing"]))
        nodes.append(helper.make_node("Add", [last, "nothing"], [output_name]))
    else:
        nodes.append(helper.make_node("Identity", [last], [output_name]))
    initializers = [
        helper.make_tensor("w", cast_to, [width, 1], list(weights)),
        helper.make_tensor("bias", cast_to, [], [-2.0]),
        helper.make_tensor("zero", cast_to, [], [0.0]),
    ]
    graph = helper.make_graph(
        nodes,
        "contract_breaker",
        [helper.make_tensor_value_info(input_name, elem_type, [None, width])],
        [helper.make_tensor_value_info(output_name, cast_to, [None, 1])],
        initializers,
    )
    opsets = [helper.make_opsetid("", 17)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return bytes(model.SerializeToString())


Column = tuple[str, int, list[int | None]]  # graph input: name, element type, shape


def per_column_graph(
    columns: list[Column],
    *,
    concat: bool = True,
    inner: str = "merged",
) -> bytes:
    """A logistic model with one input per column, the way per-column exporters lay it out.

    Numeric inputs are cast to float and brought to [N, 1]; with ``concat`` they are
    concatenated into one matrix (skl2onnx's pattern) and multiplied by weights, without it
    each column is weighted on its own.  String inputs go through a LabelEncoder.  ``inner``
    names the concatenated matrix (a test names it ``numeric`` to force a rename).
    """
    nodes: list[onnx.NodeProto] = []
    initializers = [
        helper.make_tensor("bias", TensorProto.FLOAT, [], [-2.0]),
        helper.make_tensor("to_column", TensorProto.INT64, [2], [-1, 1]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
    ]
    numeric: list[str] = []
    terms: list[str] = []
    for name, elem, dims in columns:
        if elem == TensorProto.STRING:
            nodes.append(
                helper.make_node(
                    "LabelEncoder",
                    [name],
                    [f"{name}_code"],
                    domain="ai.onnx.ml",
                    keys_strings=["BR", "DE", "app"],
                    values_floats=[1.5, 0.2, 0.7],
                    default_float=0.0,
                )
            )
            nodes.append(helper.make_node("Reshape", [f"{name}_code", "to_column"], [f"{name}_c"]))
            terms.append(f"{name}_c")
            continue
        current = name
        if len(dims) == 1:
            nodes.append(helper.make_node("Reshape", [current, "to_column"], [f"{name}_2d"]))
            current = f"{name}_2d"
        if elem != TensorProto.FLOAT:
            nodes.append(helper.make_node("Cast", [current], [f"{name}_f"], to=TensorProto.FLOAT))
            current = f"{name}_f"
        numeric.append(current)
    weights = [0.001 * (i + 1) for i in range(len(numeric))]
    if numeric and concat:
        initializers.append(helper.make_tensor("w", TensorProto.FLOAT, [len(numeric), 1], weights))
        nodes += [
            helper.make_node("Concat", numeric, [inner], axis=1),
            # A missing optional value arrives as NaN: counted as 0, as an imputer would.
            helper.make_node("IsNaN", [inner], ["missing"]),
            helper.make_node("Where", ["missing", "zero", inner], ["filled"]),
            helper.make_node("MatMul", ["filled", "w"], ["numeric_term"]),
        ]
        terms.append("numeric_term")
    elif numeric:
        for i, (column, weight) in enumerate(zip(numeric, weights, strict=True)):
            initializers.append(helper.make_tensor(f"w{i}", TensorProto.FLOAT, [], [weight]))
            nodes += [
                helper.make_node("Mul", [column, f"w{i}"], [f"product{i}"]),
                helper.make_node("IsNaN", [f"product{i}"], [f"missing{i}"]),
                helper.make_node("Where", [f"missing{i}", "zero", f"product{i}"], [f"term{i}"]),
            ]
            terms.append(f"term{i}")
    nodes += [
        helper.make_node("Sum", [*terms, "bias"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["probability"]),
    ]
    graph = helper.make_graph(
        nodes,
        "per_column",
        [helper.make_tensor_value_info(name, elem, dims) for name, elem, dims in columns],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, [None, 1])],
        initializers,
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 2)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
