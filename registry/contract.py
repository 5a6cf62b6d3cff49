"""Checking rows against a model's input schema and turning them into the graph's inputs.

Shared by registration (golden examples), the scorer (every request) and the retrain pipeline
(evaluation), so the three cannot disagree about what a row means.  A :class:`RowCodec` is
compiled once per model; ``check`` and ``encode`` do no per-call set-up.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter

import numpy as np
import numpy.typing as npt

from registry.manifest import FieldType, InputField, InputSchema, OutputSpec

NUMERIC_INPUT = "numeric"
CATEGORICAL_INPUT = "categorical"
_SHOWN_ALLOWED = 8
# The largest float32: numeric inputs are packed as float32, and a larger magnitude would be
# cast to infinity (numpy only warns).
FLOAT32_MAX = 3.4028234663852886e38
# The largest integer every JSON reader holds exactly (2**53): a wider integer field would read
# differently in different clients, and JSON readers round it to a float silently.
MAX_EXACT_INT = 2**53


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """What is wrong with one field of one row."""

    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}"


def _numeric_problem(spec: InputField, value: object) -> str | None:
    if spec.type is FieldType.BOOL:
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number (NaN and infinity are refused)"
    if abs(value) > FLOAT32_MAX:
        return f"must be within ±{FLOAT32_MAX:.7g}, the float32 range (got {value:g})"
    if spec.type is FieldType.INT and isinstance(value, float) and not value.is_integer():
        return "must be a whole number"
    if spec.type is FieldType.INT and abs(value) > MAX_EXACT_INT:
        return f"must be a whole number within ±{MAX_EXACT_INT} (got {value:g})"
    if spec.minimum is not None and value < spec.minimum:
        return f"must be >= {spec.minimum:g} (got {value:g})"
    if spec.maximum is not None and value > spec.maximum:
        return f"must be <= {spec.maximum:g} (got {value:g})"
    return None


def _categorical_problem(spec: InputField, value: object) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if spec.allowed is not None and value not in spec.allowed:
        shown = ", ".join(spec.allowed[:_SHOWN_ALLOWED])
        more = f", ... ({len(spec.allowed)} in all)" if len(spec.allowed) > _SHOWN_ALLOWED else ""
        return f"{value!r} is not an allowed value ({shown}{more})"
    if not value and spec.required and not spec.allowed:
        return "must not be empty"  # "" is how a missing optional value is encoded
    return None


_NumericRule = tuple[str, tuple[type, ...], float, float]


def _numeric_rule(spec: InputField) -> _NumericRule:
    """``spec`` as (name, accepted types, lowest, highest): the checks of
    :func:`_numeric_problem` for a value that passes them, as one type test and one range."""
    if spec.type is FieldType.BOOL:
        return spec.name, (bool,), 0.0, 1.0
    widest = MAX_EXACT_INT if spec.type is FieldType.INT else FLOAT32_MAX
    low = -widest if spec.minimum is None else max(spec.minimum, -widest)
    high = widest if spec.maximum is None else min(spec.maximum, widest)
    # An INT field takes a whole float too, but only the full check looks at it.
    return spec.name, (int,) if spec.type is FieldType.INT else (float, int), low, high


class RowCodec:
    """Validates rows against one :class:`InputSchema` and encodes them as graph inputs."""

    def __init__(self, schema: InputSchema) -> None:
        self.schema = schema
        self._numeric = schema.numeric
        self._categorical = schema.categorical
        self._allowed = {f.name: frozenset(f.allowed) for f in schema.fields if f.allowed}
        # numeric_row's rules: only for a schema of numeric fields (the common layout).
        self._rules = (
            tuple(_numeric_rule(f) for f in self._numeric)
            if self._numeric and not self._categorical
            else None
        )
        self.field_count = len(schema.fields)
        # encode's numeric values of a row in one C call; KeyError when a field is missing.
        self._numeric_values: Callable[[Mapping[str, object]], tuple[object, ...]] | None = (
            _values_of(tuple(f.name for f in self._numeric)) if self._numeric else None
        )

    @property
    def input_names(self) -> tuple[str, ...]:
        """The graph inputs a model with this schema must declare."""
        names = [NUMERIC_INPUT] if self._numeric else []
        return (*names, CATEGORICAL_INPUT) if self._categorical else tuple(names)

    def check(self, row: Mapping[str, object]) -> list[FieldProblem]:
        """Every problem of ``row`` (empty when it is valid).  Unknown keys are not problems:
        they may be inputs of a shadow model, and the scorer keeps them for replay."""
        problems: list[FieldProblem] = []
        for spec in self._numeric:
            value = row.get(spec.name)
            if value is None:
                if spec.required:
                    problems.append(FieldProblem(spec.name, "is required"))
                continue
            problem = _numeric_problem(spec, value)
            if problem is not None:
                problems.append(FieldProblem(spec.name, problem))
        for spec in self._categorical:
            value = row.get(spec.name)
            if value is None:
                if spec.required:
                    problems.append(FieldProblem(spec.name, "is required"))
                continue
            if (
                not isinstance(value, str)
                or (spec.name in self._allowed and value not in self._allowed[spec.name])
                or (not value and spec.required and spec.name not in self._allowed)
            ):
                problems.append(FieldProblem(spec.name, str(_categorical_problem(spec, value))))
        return problems

    def numeric_row(self, row: Mapping[str, object]) -> list[object] | None:
        """The request path's shortcut: ``row``'s values in the schema's order when the schema
        has numeric fields only and every field is present and valid; None otherwise (then
        :meth:`check` says what is wrong, if anything, and :meth:`encode` encodes it).

        One type test and one range comparison per field, against ~1 us a field for
        :meth:`check`; a row it accepts is one :meth:`check` finds nothing wrong with, and
        :meth:`encode_numeric` gives the graph inputs :meth:`encode` would."""
        rules = self._rules
        if rules is None:
            return None
        values: list[object] = []
        append = values.append
        for name, types, low, high in rules:
            value = row.get(name)
            # NaN fails both comparisons, infinities the float32 range: neither passes here.
            if type(value) not in types or not low <= value <= high:  # type: ignore[operator]
                return None
            append(value)
        return values

    def encode_numeric(self, rows: Sequence[list[object]]) -> dict[str, npt.NDArray[np.generic]]:
        """The graph inputs for rows from :meth:`numeric_row`."""
        return {NUMERIC_INPUT: np.array(rows, dtype=np.float32)}

    def encode(self, rows: Sequence[Mapping[str, object]]) -> dict[str, npt.NDArray[np.generic]]:
        """The graph inputs for already-checked rows (missing optional values: NaN and "")."""
        feeds: dict[str, npt.NDArray[np.generic]] = {}
        if self._numeric_values is not None:
            # Rows that hold every field, the usual case, in one call each: 0.9 us a row of 30
            # fields against 2.5 field by field (the 2-core bench machine; the sidecar's shadow
            # batches).  numpy makes a None NaN, as the field-by-field path does.
            values_of = self._numeric_values
            try:
                numeric: list[Sequence[object]] = [values_of(row) for row in rows]
            except KeyError:  # a missing optional field: NaN
                nan = math.nan
                numeric = [
                    [nan if (v := row.get(f.name)) is None else v for f in self._numeric]
                    for row in rows
                ]
            feeds[NUMERIC_INPUT] = np.array(numeric, dtype=np.float32)
        if self._categorical:
            feeds[CATEGORICAL_INPUT] = np.array(
                [[row.get(f.name) or "" for f in self._categorical] for row in rows],
                dtype=object,
            )
        return feeds


def _values_of(names: tuple[str, ...]) -> Callable[[Mapping[str, object]], tuple[object, ...]]:
    """A row's values under ``names``, as a tuple, in one C call (``itemgetter`` gives a bare
    value, not a tuple, for one name)."""
    if len(names) == 1:
        get_one = itemgetter(names[0])
        return lambda row: (get_one(row),)
    return itemgetter(*names)


Columns = Mapping[str, npt.NDArray[np.generic]]


def _absent(values: npt.NDArray[np.generic]) -> npt.NDArray[np.bool_]:
    """Which entries of an object array are None (elementwise, not identity of the array)."""
    return np.asarray(values == None, dtype=bool)  # noqa: E711


class ColumnCodec:
    """:class:`RowCodec`'s rules applied a column at a time, for scoring archived traffic in
    bulk (``shadowline replay``).  Rows the screen passes are valid for :meth:`RowCodec.check`;
    the others must be checked row by row (which names the problem).

    Columns hold one field each: ``numbers`` as float64 with NaN for a missing value (booleans
    as 0/1), ``strings`` as object arrays of str or None.  The caller vouches that a field's
    values are of its kind (numbers for numeric fields, booleans for bool fields, strings for
    categorical ones); a field absent from the mappings is missing in every row.
    """

    def __init__(self, codec: RowCodec) -> None:
        self.codec = codec

    def screen(self, numbers: Columns, strings: Columns, n: int) -> npt.NDArray[np.bool_]:
        """True for each row that certainly passes :meth:`RowCodec.check`."""
        ok = np.ones(n, dtype=bool)
        for spec in self.codec._numeric:
            values = numbers.get(spec.name)
            missing = np.ones(n, dtype=bool) if values is None else np.isnan(values)
            if spec.required:
                ok &= ~missing
            if values is None or spec.type is FieldType.BOOL:
                continue
            v = np.where(missing, 0.0, values)
            good = np.abs(v) <= FLOAT32_MAX
            if spec.type is FieldType.INT:
                good &= v == np.floor(v)
            if spec.minimum is not None:
                good &= v >= spec.minimum
            if spec.maximum is not None:
                good &= v <= spec.maximum
            ok &= missing | good
        for spec in self.codec._categorical:
            values = strings.get(spec.name)
            if values is None:
                if spec.required:
                    ok[:] = False
                continue
            missing = _absent(values)
            if spec.required:
                ok &= ~missing
            if spec.name in self.codec._allowed:
                ok &= missing | np.isin(values, list(self.codec._allowed[spec.name]))
            elif spec.required:
                ok &= values != ""
        return ok

    def encode(
        self, numbers: Columns, strings: Columns, n: int
    ) -> dict[str, npt.NDArray[np.generic]]:
        """The graph inputs, exactly as :meth:`RowCodec.encode` builds them for the same rows."""
        feeds: dict[str, npt.NDArray[np.generic]] = {}
        if self.codec._numeric:
            nan = np.full(n, np.nan)
            feeds[NUMERIC_INPUT] = np.column_stack(
                [numbers.get(f.name, nan) for f in self.codec._numeric]
            ).astype(np.float32)
        if self.codec._categorical:
            empty = np.full(n, "", dtype=object)
            columns = []
            for spec in self.codec._categorical:
                values = strings.get(spec.name)
                columns.append(empty if values is None else np.where(_absent(values), "", values))
            feeds[CATEGORICAL_INPUT] = np.column_stack(columns).astype(object)
        return feeds


def scores_from_output(
    spec: OutputSpec, output: npt.NDArray[np.generic]
) -> npt.NDArray[np.float64]:
    """The fraud probability per row from the graph output named by ``spec``.

    Raises ValueError naming the shape when it does not fit the spec.
    """
    array = np.asarray(output)
    if array.ndim == 2 and spec.column is not None:
        if spec.column >= array.shape[1]:
            raise ValueError(
                f"output {spec.name} has {array.shape[1]} columns; column {spec.column} requested"
            )
        array = array[:, spec.column]
    elif array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    elif array.ndim != 1:
        raise ValueError(
            f"output {spec.name} has shape {list(array.shape)}; expected [N] or [N, 1] "
            "(or set output.column)"
        )
    return array.astype(np.float64)
