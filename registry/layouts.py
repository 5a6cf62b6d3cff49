"""Which input layout a graph uses, and how the scorer's packed inputs reach each graph input.

The scorer always feeds the packed inputs of :mod:`registry.contract` (``numeric`` float32
``[N, k]``, ``categorical`` string ``[N, m]``) in one call.  Exporters produce other layouts;
three are accepted, matched to the manifest's fields by name or by order:

* ``packed``: the graph's inputs are exactly the packed ones (nothing to adapt);
* ``per-column``: one input per manifest field, named as the field, element type float,
  double, int64, int32, bool or string, shape ``[N, 1]`` or ``[N]`` (what skl2onnx gives for
  a pandas pipeline that selects columns by name);
* ``single-tensor``: one float or double input ``[N, k]`` holding the schema's ``k`` numeric
  fields in manifest order (a schema with no categorical field).

:func:`plan_inputs` names every problem it finds; :mod:`registry.adapter` builds the graph
that routes the packed columns to the plan's inputs.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from enum import StrEnum

import onnx
from onnx import TensorProto

from registry.contract import CATEGORICAL_INPUT, NUMERIC_INPUT
from registry.manifest import FieldType, InputField, InputSchema

SUPPORTED_LAYOUTS = (
    "supported input layouts: one input per manifest field, named as the field (float, "
    "double, int64, int32, bool or string; shape [N, 1] or [N]); one float or double input "
    "[N, k] holding the k numeric fields in manifest order; or the packed inputs 'numeric' "
    "float [N, k] and 'categorical' string [N, m]"
)
_PACKED_TYPES = {NUMERIC_INPUT: TensorProto.FLOAT, CATEGORICAL_INPUT: TensorProto.STRING}
_FLOATS = frozenset({TensorProto.FLOAT, TensorProto.DOUBLE})
_INTS = _FLOATS | {TensorProto.INT64, TensorProto.INT32}
_FEEDS: dict[FieldType, frozenset[int]] = {
    FieldType.FLOAT: _FLOATS,
    FieldType.INT: _INTS,
    FieldType.BOOL: _INTS | {TensorProto.BOOL},
    FieldType.CATEGORICAL: frozenset({TensorProto.STRING}),
}
_FEEDABLE = frozenset().union(*_FEEDS.values())
# A missing optional numeric value is NaN in the packed input; these types cannot hold it.
_NO_MISSING = frozenset({TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL})


class Layout(StrEnum):
    PACKED = "packed"
    PER_COLUMN = "per-column"
    SINGLE_TENSOR = "single-tensor"


@dataclass(frozen=True, slots=True)
class Route:
    """One graph input fed from packed columns: ``source[:, columns]``, cast to
    ``elem_type``, as ``[N, len(columns)]`` (rank 2) or ``[N]`` (rank 1, one column)."""

    input: str
    elem_type: int
    rank: int
    source: str
    columns: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class InputPlan:
    """How the packed inputs reach the graph; ``routes`` is empty for the packed layout."""

    layout: Layout
    routes: tuple[Route, ...]

    def describe(self) -> str:
        """``per-column (9 inputs)``, ``single-tensor (input 'X')`` or ``packed``."""
        if self.layout is Layout.PER_COLUMN:
            return f"per-column ({len(self.routes)} inputs)"
        if self.layout is Layout.SINGLE_TENSOR:
            return f"single-tensor (input {self.routes[0].input!r})"
        return "packed"


def type_name(elem_type: int) -> str:
    """``tensor(float)``, ``tensor(int64)``...: how onnxruntime names an element type."""
    try:
        return f"tensor({TensorProto.DataType.Name(elem_type).lower()})"
    except ValueError:
        return f"tensor(type {elem_type})"


def _dims(value: onnx.ValueInfoProto) -> list[int | None] | None:
    """The declared dimensions (None for a dynamic one), or None when the rank is unknown."""
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]


def shape_text(dims: list[int | None] | None) -> str:
    if dims is None:
        return "unknown shape"
    return "[" + ", ".join("N" if d is None else str(d) for d in dims) + "]"


def graph_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    """The inputs a caller feeds (older IR versions list initializers as inputs too)."""
    constants = {init.name for init in graph.initializer}
    return [value for value in graph.input if value.name not in constants]


def plan_inputs(graph: onnx.GraphProto, schema: InputSchema) -> tuple[InputPlan | None, list[str]]:
    """The plan for ``graph``'s inputs, or None and every problem found."""
    inputs = graph_inputs(graph)
    names = {value.name for value in inputs}
    fields = {f.name: f for f in schema.fields}
    packed = {NUMERIC_INPUT} if schema.numeric else set()
    packed |= {CATEGORICAL_INPUT} if schema.categorical else set()
    if (
        not names & set(fields)
        and names <= {NUMERIC_INPUT, CATEGORICAL_INPUT}
        and (schema.categorical or len(names) > 1)
    ):
        return _packed(inputs, schema, packed)
    if len(inputs) == 1 and not names & set(fields):
        return _single(inputs[0], schema)
    return _per_column(inputs, schema, fields)


def _packed(
    inputs: list[onnx.ValueInfoProto], schema: InputSchema, expected: set[str]
) -> tuple[InputPlan | None, list[str]]:
    widths = {NUMERIC_INPUT: len(schema.numeric), CATEGORICAL_INPUT: len(schema.categorical)}
    actual = {value.name: value for value in inputs}
    problems: list[str] = []
    for name in sorted(expected, key=[NUMERIC_INPUT, CATEGORICAL_INPUT].index):
        if name not in actual:
            problems.append(
                f"graph input {name!r} is missing (the schema has {widths[name]} {name} fields)"
            )
            continue
        elem = actual[name].type.tensor_type.elem_type
        if elem != _PACKED_TYPES[name]:
            problems.append(
                f"graph input {name!r} has type {type_name(elem)}; "
                f"expected {type_name(_PACKED_TYPES[name])}"
            )
        dims = _dims(actual[name])
        if dims is None or len(dims) != 2 or dims[1] != widths[name] or dims[0] is not None:
            problems.append(
                f"graph input {name!r} has shape {shape_text(dims)}; expected "
                f"[N, {widths[name]}] (dynamic batch dimension, one column per field)"
            )
    for name in sorted(set(actual) - expected):
        problems.append(
            f"graph has an unexpected input {name!r} (the schema needs exactly: "
            f"{', '.join(sorted(expected, key=[NUMERIC_INPUT, CATEGORICAL_INPUT].index))})"
        )
    return (None, problems) if problems else (InputPlan(Layout.PACKED, ()), [])


def _single(value: onnx.ValueInfoProto, schema: InputSchema) -> tuple[InputPlan | None, list[str]]:
    name, elem, dims = value.name, value.type.tensor_type.elem_type, _dims(value)
    numeric = [f.name for f in schema.numeric]
    if schema.categorical:
        fields = ", ".join(f.name for f in schema.categorical)
        return None, [
            f"graph has one input {name!r} but the schema has categorical fields ({fields}), "
            f"which a single tensor cannot carry; {SUPPORTED_LAYOUTS}"
        ]
    k = len(numeric)
    wanted = f"float or double [N, {k}] (the fields {', '.join(numeric)}, in this order)"
    if not value.type.HasField("tensor_type") or elem not in (
        TensorProto.FLOAT,
        TensorProto.DOUBLE,
    ):
        what = type_name(elem) if value.type.HasField("tensor_type") else "not a tensor"
        return None, [f"graph input {name!r} is {what}; expected {wanted}; {SUPPORTED_LAYOUTS}"]
    if dims is None or len(dims) != 2 or dims[0] is not None or dims[1] not in (k, None):
        return None, [
            f"graph input {name!r} has shape {shape_text(dims)}; expected {wanted} "
            "with a dynamic batch dimension"
        ]
    if name == NUMERIC_INPUT and elem == TensorProto.FLOAT and dims[1] == k:
        return InputPlan(Layout.PACKED, ()), []  # the packed convention of a numeric schema
    route = Route(input=name, elem_type=elem, rank=2, source=NUMERIC_INPUT, columns=tuple(range(k)))
    return InputPlan(Layout.SINGLE_TENSOR, (route,)), []


def _per_column(
    inputs: list[onnx.ValueInfoProto], schema: InputSchema, fields: dict[str, InputField]
) -> tuple[InputPlan | None, list[str]]:
    columns = {f.name: (NUMERIC_INPUT, i) for i, f in enumerate(schema.numeric)}
    columns |= {f.name: (CATEGORICAL_INPUT, i) for i, f in enumerate(schema.categorical)}
    read = {value.name for value in inputs}
    unread = [name for name in fields if name not in read]
    problems: list[str] = []
    routes: list[Route] = []
    unsupported = False
    for value in inputs:
        spec = fields.get(value.name)
        if spec is None:
            close = difflib.get_close_matches(value.name, unread, n=1)
            hint = f" (rename the field {close[0]!r}?)" if close else ""
            problems.append(f"graph input {value.name!r} has no manifest field of that name{hint}")
            unsupported |= _unfeedable(value) is not None
            continue
        unfeedable = _unfeedable(value)
        problem = unfeedable or _mismatch(value, spec)
        if problem is not None:
            problems.append(problem)
            unsupported |= unfeedable is not None
            continue
        dims = _dims(value) or []
        source, column = columns[spec.name]
        routes.append(
            Route(
                input=value.name,
                elem_type=value.type.tensor_type.elem_type,
                rank=len(dims),
                source=source,
                columns=(column,),
            )
        )
    problems += [
        f"manifest field {name!r} has no graph input (each field needs one, named as the field)"
        for name in unread
    ]
    if problems and unsupported:
        problems.append(SUPPORTED_LAYOUTS)
    if problems:
        return None, problems
    return InputPlan(Layout.PER_COLUMN, tuple(routes)), []


def _unfeedable(value: onnx.ValueInfoProto) -> str | None:
    """Why no field could feed this input (outside every layout), or None."""
    name = value.name
    if not value.type.HasField("tensor_type"):
        return f"graph input {name!r} is not a tensor, which Shadowline cannot feed"
    elem = value.type.tensor_type.elem_type
    if elem not in _FEEDABLE:
        return (
            f"graph input {name!r} has element type {type_name(elem)}, which Shadowline cannot "
            "feed (float, double, int64, int32, bool or string)"
        )
    dims = _dims(value)
    if dims is None or not (dims == [None] or dims == [None, 1]):
        return (
            f"graph input {name!r} has shape {shape_text(dims)}; a per-field input must be "
            "[N, 1] or [N] with a dynamic batch dimension"
        )
    return None


def _mismatch(value: onnx.ValueInfoProto, spec: InputField) -> str | None:
    """Why ``spec`` cannot feed this (feedable) input, or None."""
    name = value.name
    elem = value.type.tensor_type.elem_type
    kind = type_name(elem)
    if elem not in _FEEDS[spec.type]:
        if spec.type is FieldType.CATEGORICAL:
            fix = "declare the field int or float, or export the input as a string tensor"
        elif elem == TensorProto.STRING:
            fix = "declare the field categorical, or export the input as a float tensor"
        else:
            fix = "declare the field int, or export the input as a float tensor"
        sent = "a string" if spec.type is FieldType.CATEGORICAL else "a number"
        return (
            f"graph input {name!r} is {kind} but field {name!r} is {spec.type.value} "
            f"(sent as {sent}): {fix}"
        )
    if elem in _NO_MISSING and not spec.required:
        return (
            f"graph input {name!r} is {kind} but field {name!r} is optional: a missing value "
            f"(NaN) has no {kind} form; make the field required, or export the input as float"
        )
    return None
