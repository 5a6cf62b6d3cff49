"""The ``export`` step: one ONNX graph from the raw inputs to a fraud probability.

The graph follows the Shadowline input convention (``numeric`` float32 [N, k] and
``categorical`` string [N, m], see :mod:`registry.contract`): the encoding nodes from
:class:`~retrain.encoding.FeatureEncoder` feed the trainer's own graph, and a final ``Slice``
exposes column 1 of its probabilities as ``probability`` [N, 1].  Only standard domains
(``ai.onnx`` and ``ai.onnx.ml``) are used, so any onnxruntime can load it.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from registry.contract import CATEGORICAL_INPUT, NUMERIC_INPUT
from registry.manifest import OutputSpec
from retrain.encoding import FEATURES_NAME, FeatureEncoder
from retrain.schema import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from retrain.training import CORE_OUTPUT, TrainedModel

OUTPUT = OutputSpec(name="probability", column=None)
ONNX_OPSET = 19  # string Equal needs 19
ML_OPSET = 3


def export_onnx(model: TrainedModel, encoder: FeatureEncoder, *, doc: str = "") -> bytes:
    """The serialised graph; checked by ``onnx.checker`` before it is returned."""
    core = model.to_onnx(len(encoder.feature_names))
    graph = core.graph
    inner = list(graph.node)
    # The converter's own "label" output is not part of the contract: keep its node (it is
    # cheap) but expose only the probability.
    nodes = [
        *encoder.onnx_nodes(),
        *inner,
        helper.make_node(
            "Constant",
            [],
            ["col_start"],
            value=helper.make_tensor("s", TensorProto.INT64, [1], [1]),
        ),
        helper.make_node(
            "Constant", [], ["col_end"], value=helper.make_tensor("e", TensorProto.INT64, [1], [2])
        ),
        helper.make_node(
            "Constant", [], ["col_axis"], value=helper.make_tensor("a", TensorProto.INT64, [1], [1])
        ),
        helper.make_node("Slice", [CORE_OUTPUT, "col_start", "col_end", "col_axis"], [OUTPUT.name]),
    ]
    inputs = [
        helper.make_tensor_value_info(
            NUMERIC_INPUT, TensorProto.FLOAT, [None, len(NUMERIC_FEATURES)]
        ),
        helper.make_tensor_value_info(
            CATEGORICAL_INPUT, TensorProto.STRING, [None, len(CATEGORICAL_FEATURES)]
        ),
    ]
    outputs = [helper.make_tensor_value_info(OUTPUT.name, TensorProto.FLOAT, [None, 1])]
    if any(i.name == FEATURES_NAME for i in graph.initializer):
        raise ValueError(f"the trainer's graph already defines {FEATURES_NAME!r}")
    merged = helper.make_graph(
        nodes, "shadowline_fraud", inputs, outputs, initializer=list(graph.initializer)
    )
    opsets = [helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)]
    result = helper.make_model(merged, opset_imports=opsets, producer_name="shadowline-retrain")
    result.ir_version = 9
    result.doc_string = doc
    onnx.checker.check_model(result, full_check=True)
    serialised: bytes = result.SerializeToString()
    return serialised
