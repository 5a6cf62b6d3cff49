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
from retrain.errors import StepError
from retrain.schema import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from retrain.training import CORE_OUTPUT, TrainedModel

OUTPUT = OutputSpec(name="probability", column=None)
ONNX_OPSET = 19  # string Equal needs 19
ML_OPSET = 3


def export_onnx(model: TrainedModel, encoder: FeatureEncoder, *, doc: str = "") -> bytes:
    """The serialised graph; checked by ``onnx.checker`` before it is returned."""
    core = model.to_onnx(len(encoder.feature_names))
    graph = core.graph
    encoding = encoder.onnx_nodes()
    # Column 1 of the trainer's [N, 2] probabilities is the contract's output.  (The
    # converter's own "label" output stays in the graph, unexposed: it is cheap.)
    pick = [
        _int_constant("col_start", 1),
        _int_constant("col_end", 2),
        _int_constant("col_axis", 1),
        helper.make_node("Slice", [CORE_OUTPUT, "col_start", "col_end", "col_axis"], [OUTPUT.name]),
    ]
    _check_core(core, {name for node in encoding + pick for name in node.output})
    nodes = [*encoding, *graph.node, *pick]
    inputs = [
        helper.make_tensor_value_info(
            NUMERIC_INPUT, TensorProto.FLOAT, [None, len(NUMERIC_FEATURES)]
        ),
        helper.make_tensor_value_info(
            CATEGORICAL_INPUT, TensorProto.STRING, [None, len(CATEGORICAL_FEATURES)]
        ),
    ]
    outputs = [helper.make_tensor_value_info(OUTPUT.name, TensorProto.FLOAT, [None, 1])]
    merged = helper.make_graph(
        nodes, "shadowline_fraud", inputs, outputs, initializer=list(graph.initializer)
    )
    # The trainer's graph may need newer operator versions than the encoding does.
    versions = {"": ONNX_OPSET, "ai.onnx.ml": ML_OPSET}
    for opset in core.opset_import:
        domain = "" if opset.domain == "ai.onnx" else opset.domain
        versions[domain] = max(versions.get(domain, 0), opset.version)
    opsets = [helper.make_opsetid(domain, version) for domain, version in versions.items()]
    result = helper.make_model(merged, opset_imports=opsets, producer_name="shadowline-retrain")
    result.ir_version = max(9, core.ir_version)
    result.doc_string = doc
    onnx.checker.check_model(result, full_check=True)
    serialised: bytes = result.SerializeToString()
    return serialised


def _check_core(core: onnx.ModelProto, ours: set[str]) -> None:
    """The trainer's graph must take :data:`FEATURES_NAME` only, produce :data:`CORE_OUTPUT`,
    and not reuse a name the encoding nodes define."""
    graph = core.graph
    given = [i.name for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    if given != [FEATURES_NAME]:
        raise StepError(f"the trainer's graph takes inputs {given}; expected ['{FEATURES_NAME}']")
    produced = {o.name for o in graph.output}
    if CORE_OUTPUT not in produced:
        raise StepError(
            f"the trainer's graph has outputs {sorted(produced)}; expected '{CORE_OUTPUT}'"
        )
    clash = sorted(
        ours
        & ({n for node in graph.node for n in node.output} | {t.name for t in graph.initializer})
    )
    if clash:
        raise StepError(f"the trainer's graph reuses names of the encoding: {clash}")


def _int_constant(name: str, value: int) -> onnx.NodeProto:
    return helper.make_node(
        "Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64, [1], [value])
    )
