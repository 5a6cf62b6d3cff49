"""Validation of a model at registration, before anything is written.

A model is accepted only if every check passes, in this order (a failed stage stops the later
ones, since they would only repeat its problem):

1. the bytes parse as an ONNX model;
2. every operator is from a standard domain (``""``/``ai.onnx`` or ``ai.onnx.ml``): contrib
   operators (``com.microsoft``) tie a model to one runtime build, and custom ones could not
   run in a scorer replica at all;
3. ``onnx.checker`` accepts it;
4. its inputs follow one of the layouts of :mod:`registry.layouts`, matched to the manifest's
   fields; a layout other than the packed one gets an input adapter composed in front
   (:mod:`registry.adapter`), and a scikit-learn ZipMap output is replaced by its probability
   tensor, so what the scorer runs always takes the packed inputs;
5. onnxruntime loads the result and the output named by the manifest is a numeric tensor;
6. every golden example is a valid row, and running them all gives one score per row, each in
   [0, 1] and within ``tolerance`` of its expected score (through the adapter: exactly what
   the scorer will compute).

Each refusal names what is wrong: the input, its type or shape, the row and the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from registry.adapter import AdapterError, adapt
from registry.constants import GOLDEN_TOLERANCE
from registry.contract import RowCodec, scores_from_output
from registry.errors import ValidationFailed
from registry.layouts import plan_inputs
from registry.manifest import Manifest

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
_SCORE_TYPES = {"tensor(float)", "tensor(double)"}
_MAX_GOLDEN_PROBLEMS = 5  # enough to see the pattern, short enough to read
ZIPMAP_HINT = (
    "export the classifier without ZipMap: zipmap=False (skl2onnx: "
    "options={id(classifier): {'zipmap': False}}; onnxmltools: zipmap=False)"
)


@dataclass(frozen=True, slots=True)
class PreparedModel:
    """A model that passed validation.  ``artifact`` is what the scorer runs (the packed
    inputs); ``source`` the bytes as given, equal to ``artifact`` when nothing was composed."""

    artifact: bytes
    source: bytes
    layout: str

    @property
    def composed(self) -> bool:
        return self.artifact != self.source


def prepare_model(
    artifact: bytes, manifest: Manifest, *, tolerance: float = GOLDEN_TOLERANCE
) -> PreparedModel:
    """Validate ``artifact`` against ``manifest`` and compose its input adapter.

    Raises :class:`ValidationFailed` naming every problem of the failing stage.
    """
    ref = manifest.ref
    model = parse_model(ref, artifact)
    domains = sorted({node.domain for node in _nodes(model.graph, model)} - STANDARD_DOMAINS)
    if domains:
        users = {node.op_type for node in _nodes(model.graph, model) if node.domain in set(domains)}
        raise ValidationFailed(
            ref,
            [
                f"non-standard operator domain {', '.join(repr(d) for d in domains)} "
                f"(operators: {', '.join(sorted(users))}); only '', 'ai.onnx' and "
                "'ai.onnx.ml' can run in the scorer"
            ],
        )
    _check(ref, model)
    plan, problems = plan_inputs(model.graph, manifest.input_schema)
    if plan is None:
        raise ValidationFailed(ref, problems)
    try:
        adapted = adapt(model, plan, manifest.input_schema, manifest.output.name)
    except AdapterError as exc:
        raise ValidationFailed(ref, [str(exc)]) from None
    prepared = artifact
    if adapted.changed:
        prepared = adapted.model.SerializeToString()
        _check(ref, adapted.model, " with its input adapter")
    session = inference_session(ref, prepared)
    problems = _output_problems(session, manifest)
    if problems:
        raise ValidationFailed(ref, problems)
    problems = _golden_problems(session, manifest, tolerance)
    if problems:
        raise ValidationFailed(ref, problems)
    return PreparedModel(artifact=prepared, source=artifact, layout=adapted.layout)


def validate_model(
    artifact: bytes, manifest: Manifest, *, tolerance: float = GOLDEN_TOLERANCE
) -> None:
    """Raise :class:`ValidationFailed` (naming every problem found) unless ``artifact`` fulfils
    ``manifest``'s contract; return None when it does."""
    prepare_model(artifact, manifest, tolerance=tolerance)


def parse_model(ref: str, artifact: bytes) -> onnx.ModelProto:
    """The parsed model; ValidationFailed when the bytes are not an ONNX model."""
    try:
        model = onnx.load_model_from_string(artifact)
    except Exception as exc:  # protobuf's DecodeError and onnx's own errors
        raise ValidationFailed(ref, [f"not an ONNX model (it does not parse: {exc})"]) from exc
    # Protobuf parses many random byte strings into a mostly empty message; a real model has
    # an IR version and a graph with at least one node.
    if model.ir_version == 0 or not model.graph.node:
        raise ValidationFailed(ref, ["not an ONNX model (no IR version or no graph nodes)"])
    return model


def _check(ref: str, model: onnx.ModelProto, what: str = "") -> None:
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ValidationFailed(ref, [f"onnx.checker refused it{what}: {_first_line(exc)}"]) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _nodes(graph: onnx.GraphProto, model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    """Every node of the graph, of its subgraphs (If/Loop/Scan bodies) and local functions."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _nodes(attr.g, model)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _nodes(sub, model)
    if graph is model.graph:
        for function in model.functions:
            yield from function.node


def inference_session(ref: str, artifact: bytes) -> Any:
    """An onnxruntime session on one thread; ValidationFailed when it cannot load."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # validation is one small batch; don't grab every core
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(artifact, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ValidationFailed(ref, [f"onnxruntime cannot load it: {_first_line(exc)}"]) from exc


def _output_problems(session: Any, manifest: Manifest) -> list[str]:
    outputs = {o.name: o for o in session.get_outputs()}
    wanted = manifest.output.name
    if wanted not in outputs:
        return [f"graph has no output {wanted!r} (outputs: {', '.join(sorted(outputs))})"]
    if outputs[wanted].type not in _SCORE_TYPES:
        return [
            f"graph output {wanted!r} has type {outputs[wanted].type}; expected a float "
            f"tensor ({ZIPMAP_HINT})"
        ]
    return []


def _golden_problems(session: Any, manifest: Manifest, tolerance: float) -> list[str]:
    codec = RowCodec(manifest.input_schema)
    rows = [example.inputs for example in manifest.golden_examples]
    problems = [
        f"golden example {index}: {problem}"
        for index, row in enumerate(rows)
        for problem in codec.check(row)
    ]
    if problems:
        return problems
    name = manifest.output.name
    try:
        output = session.run([name], codec.encode(rows))[0]
        scores = scores_from_output(manifest.output, np.asarray(output))
    except ValueError as exc:
        return [str(exc)]
    except Exception as exc:  # onnxruntime's own errors: the graph failed on valid rows
        return [f"running the golden examples failed: {_first_line(exc)}"]
    if scores.shape != (len(rows),):
        return [
            f"output {name!r} gave {scores.size} scores for {len(rows)} golden examples "
            f"(shape {list(np.asarray(output).shape)})"
        ]
    for index, (score, example) in enumerate(zip(scores, manifest.golden_examples, strict=True)):
        value = float(score)
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            problems.append(f"golden example {index}: score {value:.6g} is outside [0, 1]")
        elif abs(value - example.expected_score) > tolerance:
            problems.append(
                f"golden example {index}: score {value:.6f} differs from the expected "
                f"{example.expected_score:.6f} by {abs(value - example.expected_score):.6f} "
                f"(tolerance {tolerance:g})"
            )
    if len(problems) > _MAX_GOLDEN_PROBLEMS:
        more = len(problems) - _MAX_GOLDEN_PROBLEMS
        problems = [*problems[:_MAX_GOLDEN_PROBLEMS], f"... and {more} more golden examples"]
    return problems
