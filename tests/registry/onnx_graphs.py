"""Hand-built ONNX graphs that break the model contract in one specific way each."""

from __future__ import annotations

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
