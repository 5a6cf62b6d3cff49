"""Fold a graph's "concatenate the per-column inputs" step into one read of the packed tensor.

A per-column export usually starts by concatenating its numeric inputs (each first cast to
one type) into the matrix its model reads: skl2onnx does it for a ColumnTransformer's numeric
columns.  Fed column by column from the packed ``numeric`` input, that costs a Gather per
column, a Cast per column and the Concat (measured on the benchmark model: 30 columns took the
call from 10 to 18 us).  The same matrix is one Gather of the packed columns (or the packed
tensor itself), so :func:`fold_concats` rewrites it that way.

The rewrite is exact on every row the input schema accepts: a column reaches the Concat as
``D(T(x))`` for the packed float32 ``x``, the input's element type ``T`` and the Concat's type
``D``; for ``T`` float or double that is ``D(x)``, and for int64 and bool too because the
schema lets only whole numbers reach an int input and only 0/1 reach a bool one.  (Int32 is
left out: a whole float32 beyond its range has no int32 form.)  Registration then checks the
golden examples on the result, like any composed graph.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import onnx
from onnx import TensorProto, helper

from registry.contract import NUMERIC_INPUT
from registry.layouts import Route

_EXACT_FROM_FLOAT32 = frozenset(
    {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT64, TensorProto.BOOL}
)
_MATRIX_TYPES = frozenset({TensorProto.FLOAT, TensorProto.DOUBLE})


@dataclass(frozen=True, slots=True)
class Fold:
    """One Concat (and the Casts in front of it) replaced: ``columns`` of ``numeric``, as
    ``elem_type``, under the name ``output``."""

    output: str
    columns: tuple[int, ...]
    elem_type: int
    removed: tuple[onnx.NodeProto, ...]
    inputs: tuple[str, ...]


def fold_concats(graph: onnx.GraphProto, routes: list[Route], outer: set[str]) -> list[Fold]:
    """Every Concat of ``graph`` that only gathers routed numeric columns (``outer``: tensor
    names read inside subgraphs, which are never folded).  The graph is not changed."""
    by_input = {r.input: r for r in routes if r.source == NUMERIC_INPUT and r.rank == 2}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    producer: dict[str, onnx.NodeProto] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
        for name in node.output:
            producer[name] = node
    outputs = {value.name for value in graph.output}

    def only_reader(name: str, node: onnx.NodeProto) -> bool:
        readers = consumers[name]
        return len(readers) == 1 and readers[0] is node and name not in outer | outputs

    folds = []
    for node in graph.node:
        if node.op_type != "Concat" or node.domain not in ("", "ai.onnx"):
            continue
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0)
        if axis not in (1, -1):
            continue
        fold = _fold(node, by_input, producer, only_reader)
        if fold is not None:
            folds.append(fold)
    return folds


def _fold(
    concat: onnx.NodeProto,
    by_input: dict[str, Route],
    producer: dict[str, onnx.NodeProto],
    only_reader: Callable[[str, onnx.NodeProto], bool],
) -> Fold | None:
    columns: list[int] = []
    types: set[int] = set()
    removed: list[onnx.NodeProto] = [concat]
    inputs: list[str] = []
    for name in concat.input:
        if not only_reader(name, concat):
            return None
        route = by_input.get(name)
        if route is not None:  # the routed input itself
            target = route.elem_type
        else:  # a Cast of a routed input, read by nothing else
            cast = producer.get(name)
            if cast is None or cast.op_type != "Cast" or cast.domain not in ("", "ai.onnx"):
                return None
            route = by_input.get(cast.input[0])
            if route is None or not only_reader(route.input, cast):
                return None
            target = next(helper.get_attribute_value(a) for a in cast.attribute if a.name == "to")
            removed.append(cast)
        if route.elem_type not in _EXACT_FROM_FLOAT32 or route.input in inputs:
            return None
        columns.append(route.columns[0])
        types.add(target)
        inputs.append(route.input)
    if len(types) != 1 or not types <= _MATRIX_TYPES:
        return None
    return Fold(
        output=concat.output[0],
        columns=tuple(columns),
        elem_type=types.pop(),
        removed=tuple(removed),
        inputs=tuple(inputs),
    )
