"""The adapter graph registration composes in front of a model that is not packed.

:func:`compose` returns a new model whose inputs are the packed ``numeric``/``categorical``
inputs of :mod:`registry.contract`, followed by a few nodes per graph input of the original
(``Gather`` of its packed column, ``Cast`` to its element type), then the original graph
unchanged.  The scorer therefore keeps feeding two tensors in one ``session.run`` whatever
layout the model was exported with; onnxruntime runs the adapter nodes inside that call.

:func:`unzip_output` replaces a scikit-learn ``ZipMap`` (a sequence of maps, which the scorer
cannot read without a Python loop per row) by the probability tensor it was built from.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import onnx
from onnx import TensorProto, helper

from registry.contract import CATEGORICAL_INPUT, NUMERIC_INPUT
from registry.folding import fold_concats
from registry.layouts import InputPlan, Route, graph_inputs
from registry.manifest import InputSchema

ADAPTER_KEY = "shadowline.input_adapter"  # metadata_props entry naming the plan
_DEFAULT_DOMAINS = ("", "ai.onnx")
_ADAPTER_OPSET = 9  # Gather and Cast as used here exist unchanged since opset 9
_PACKED_TYPES = {NUMERIC_INPUT: TensorProto.FLOAT, CATEGORICAL_INPUT: TensorProto.STRING}


class AdapterError(ValueError):
    """The model cannot take an adapter (e.g. its default-domain opset is too old)."""


@dataclass(frozen=True, slots=True)
class Adapted:
    """What the scorer would run: ``model`` (the input itself when ``changed`` is False) and
    a description of what was done, for the lineage."""

    model: onnx.ModelProto
    layout: str
    changed: bool


def adapt(model: onnx.ModelProto, plan: InputPlan, schema: InputSchema, output: str) -> Adapted:
    """Compose the adapter of ``plan`` (if any) and unzip a ZipMap ``output`` (edits ``model``
    in place only for the ZipMap).  Raises :class:`AdapterError` like :func:`compose`."""
    runnable = compose(model, plan, schema) if plan.routes else model
    layout = plan.describe()
    unzipped = unzip_output(runnable, output)
    if unzipped:
        layout += f", ZipMap output {output!r} read as its tensor"
    return Adapted(model=runnable, layout=layout, changed=bool(plan.routes) or unzipped)


def compose(model: onnx.ModelProto, plan: InputPlan, schema: InputSchema) -> onnx.ModelProto:
    """A copy of ``model`` taking the packed inputs for ``schema``, fed through ``plan``.

    Raises :class:`AdapterError` when the model's default-domain opset predates the adapter's
    operators.
    """
    composed = onnx.ModelProto()
    composed.CopyFrom(model)
    graph = composed.graph
    _require_opset(composed)
    used = set(_names(graph))
    packed = {NUMERIC_INPUT: len(schema.numeric), CATEGORICAL_INPUT: len(schema.categorical)}
    packed = {name: width for name, width in packed.items() if width}
    # The packed names must be free: a graph tensor already called so is renamed first.
    renamed = {name: _fresh(f"source_{name}", used) for name in packed if name in used}
    for old, new in renamed.items():
        _rename(graph, old, new)
    routes = [
        Route(
            input=renamed.get(r.input, r.input),
            elem_type=r.elem_type,
            rank=r.rank,
            source=r.source,
            columns=r.columns,
        )
        for r in plan.routes
    ]
    former = {value.name: value for value in graph_inputs(graph)}
    indices: dict[tuple[int, ...], str] = {}
    nodes, folded = _fold(graph, routes, packed, indices, used)
    fed: list[str] = []
    for route in routes:
        if route.input in folded:
            continue
        if _is_whole(route, packed):
            _rename(graph, route.input, route.source)  # the input *is* the packed tensor
            continue
        nodes += _route_nodes(graph, route, indices, used)
        fed.append(route.input)
    # The routed inputs become inner tensors; their declared types and shapes stay known.
    graph.value_info.extend(former[name] for name in fed)
    routed = {route.input for route in routes}
    kept = [value for value in graph.input if value.name not in routed]
    del graph.input[:]
    graph.input.extend(
        helper.make_tensor_value_info(name, _PACKED_TYPES[name], ["N", width])
        for name, width in packed.items()
    )
    graph.input.extend(value for value in kept if value.name not in packed)
    # A tensor renamed to a packed input (a folded matrix) must not be declared twice.
    stale = [value for value in graph.value_info if value.name in packed]
    for value in stale:
        graph.value_info.remove(value)
    original = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes, *original])
    helper.set_model_props(
        composed,
        {**{p.key: p.value for p in composed.metadata_props}, ADAPTER_KEY: plan.describe()},
    )
    return composed


def unzip_output(model: onnx.ModelProto, output: str) -> bool:
    """Make ``output`` the float tensor a ZipMap node builds it from; True if one was replaced.

    The tensor has one column per class, in the ZipMap's class order, so the manifest's
    ``output.column`` keeps its meaning.
    """
    graph = model.graph
    for position, node in enumerate(graph.node):
        if node.op_type != "ZipMap" or output not in node.output:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        classes = len(attrs.get("classlabels_int64s") or attrs.get("classlabels_strings") or [])
        graph.node.remove(node)
        graph.node.insert(position, helper.make_node("Identity", [node.input[0]], [output]))
        for entry in list(graph.value_info):
            if entry.name == output:
                graph.value_info.remove(entry)
        for index, value in enumerate(graph.output):
            if value.name == output:
                graph.output.remove(value)
                tensor = helper.make_tensor_value_info(
                    output, TensorProto.FLOAT, ["N", classes or None]
                )
                graph.output.insert(index, tensor)
        return True
    return False


def _is_whole(route: Route, packed: dict[str, int]) -> bool:
    return (
        route.rank == 2
        and route.elem_type == _PACKED_TYPES[route.source]
        and route.columns == tuple(range(packed[route.source]))
    )


def _route_nodes(
    graph: onnx.GraphProto, route: Route, indices: dict[tuple[int, ...], str], used: set[str]
) -> list[onnx.NodeProto]:
    """``Gather`` the route's column (or take the whole tensor) and ``Cast`` it if needed."""
    cast = route.elem_type != _PACKED_TYPES[route.source]
    if len(route.columns) > 1:  # a whole tensor of another element type: a Cast is enough
        return [helper.make_node("Cast", [route.source], [route.input], to=route.elem_type)]
    # A 1-D index keeps the column axis ([N, 1]); a scalar index drops it ([N]).
    index = _index(graph, route.columns if route.rank == 2 else (), route.columns[0], indices, used)
    gathered = _fresh(f"adapter_{route.input}", used) if cast else route.input
    nodes = [helper.make_node("Gather", [route.source, index], [gathered], axis=1)]
    if cast:
        nodes.append(helper.make_node("Cast", [gathered], [route.input], to=route.elem_type))
    return nodes


def _index(
    graph: onnx.GraphProto,
    columns: tuple[int, ...],
    scalar: int,
    indices: dict[tuple[int, ...], str],
    used: set[str],
) -> str:
    """The name of an int64 initializer holding ``columns`` (or ``scalar`` when empty)."""
    key = columns or (-1 - scalar,)  # scalars keyed apart from 1-D indices
    if key not in indices:
        indices[key] = _fresh(f"adapter_columns_{len(indices)}", used)
        graph.initializer.append(
            helper.make_tensor(
                indices[key],
                TensorProto.INT64,
                [len(columns)] if columns else [],
                list(columns) or [scalar],
            )
        )
    return indices[key]


def _fold(
    graph: onnx.GraphProto,
    routes: list[Route],
    packed: dict[str, int],
    indices: dict[tuple[int, ...], str],
    used: set[str],
) -> tuple[list[onnx.NodeProto], set[str]]:
    """Replace each foldable Concat (:mod:`registry.folding`) by a Gather of its packed
    columns; returns the new nodes and the routed inputs nothing reads any more."""
    outer = {name for sub in list(_graphs(graph))[1:] for node in sub.node for name in node.input}
    nodes: list[onnx.NodeProto] = []
    folded: set[str] = set()
    for fold in fold_concats(graph, routes, outer):
        for node in fold.removed:
            graph.node.remove(node)
        folded.update(fold.inputs)
        whole = fold.columns == tuple(range(packed.get(NUMERIC_INPUT, 0)))
        if whole and fold.elem_type == TensorProto.FLOAT:
            _rename(graph, fold.output, NUMERIC_INPUT)  # the matrix is the packed tensor
            continue
        index = _index(graph, fold.columns, 0, indices, used)
        cast = fold.elem_type != TensorProto.FLOAT
        gathered = _fresh("adapter_matrix", used) if cast else fold.output
        nodes.append(helper.make_node("Gather", [NUMERIC_INPUT, index], [gathered], axis=1))
        if cast:
            nodes.append(helper.make_node("Cast", [gathered], [fold.output], to=fold.elem_type))
    return nodes, folded


def _require_opset(model: onnx.ModelProto) -> None:
    versions = [op.version for op in model.opset_import if op.domain in _DEFAULT_DOMAINS]
    if not versions:
        model.opset_import.append(helper.make_opsetid("", _ADAPTER_OPSET))
        model.ir_version = max(model.ir_version, 4)  # opset 9 needs IR version 4
    elif max(versions) < _ADAPTER_OPSET:
        raise AdapterError(
            f"the graph imports opset {max(versions)} of the default domain; the input adapter "
            f"needs opset {_ADAPTER_OPSET} or later (export with a newer target_opset)"
        )


def _fresh(base: str, used: set[str]) -> str:
    name, n = base, 1
    while name in used:
        name, n = f"{base}_{n}", n + 1
    used.add(name)
    return name


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and every subgraph (If/Loop/Scan bodies) inside it."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _graphs(sub)


def _names(graph: onnx.GraphProto) -> Iterator[str]:
    for g in _graphs(graph):
        for node in g.node:
            yield from node.input
            yield from node.output
        for values in (g.input, g.output, g.value_info):
            yield from (value.name for value in values)
        yield from (init.name for init in g.initializer)


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename the tensor ``old`` everywhere (subgraphs read outer tensors by name)."""
    for g in _graphs(graph):
        for node in g.node:
            for seq in (node.input, node.output):
                for i, name in enumerate(seq):
                    if name == old:
                        seq[i] = new
        for values in (g.input, g.output, g.value_info):
            for value in values:
                if value.name == old:
                    value.name = new
        for init in g.initializer:
            if init.name == old:
                init.name = new
