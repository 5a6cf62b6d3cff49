"""A sample of a model's input data, read for ``shadowline models init-manifest``.

:func:`read_sample` reads CSV or Parquet; :func:`infer_fields` turns the graph's inputs and the
sample's columns into manifest fields (types from both, required when no value is missing,
allowed categories and ranges from the values); :func:`sample_rows` gives the rows as the
scorer receives them.  pandas (and pyarrow, for Parquet) are the ``retrain`` extra, which the
scorer image does not carry, so they are imported inside these functions only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx
from onnx import TensorProto

from registry.contract import CATEGORICAL_INPUT, NUMERIC_INPUT
from registry.errors import DraftError
from registry.layouts import graph_inputs, shape_text, type_name
from registry.manifest import FieldType, InputField, Scalar

if TYPE_CHECKING:
    import pandas as pd

_INTEGERS = frozenset({TensorProto.INT64, TensorProto.INT32})


@dataclass(frozen=True, slots=True)
class FieldOptions:
    """How to read the sample: columns left out, categories listed up to ``max_categories``
    distinct values, and ranges: ``minimum`` 0 for a column with no negative value (default),
    or the observed minimum and maximum (``observed_ranges``)."""

    exclude: tuple[str, ...] = ()
    max_categories: int = 50
    observed_ranges: bool = False


def read_sample(path: Path) -> pd.DataFrame:
    """The sample at ``path`` (``.csv`` with a header, or ``.parquet``); DraftError naming the
    file when it cannot be read or has no rows."""
    try:
        import pandas as pd
    except ImportError as exc:  # the scorer image
        raise DraftError(
            "reading a sample needs pandas: install Shadowline with the retrain extra"
        ) from exc
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise DraftError(f"sample {path}: expected a .csv or .parquet file")
    try:
        frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except OSError as exc:
        raise DraftError(f"cannot read sample {path}: {exc.strerror or exc}") from None
    except (ValueError, ImportError, pd.errors.ParserError) as exc:  # malformed file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DraftError(f"cannot read sample {path}: {first}") from None
    if frame.empty:
        raise DraftError(f"sample {path} has no rows")
    frame.columns = [str(column) for column in frame.columns]
    return frame


def infer_fields(
    graph: onnx.GraphProto, frame: pd.DataFrame, options: FieldOptions
) -> tuple[tuple[InputField, ...], list[str]]:
    """The manifest fields for ``graph``'s inputs, described from ``frame``; and notes for the
    user.  Raises DraftError naming a missing column or a column that cannot feed its input."""
    unknown = [name for name in options.exclude if name not in frame.columns]
    if unknown:
        raise DraftError(
            f"--exclude {', '.join(map(repr, unknown))}: the sample has no such column"
        )
    columns = [c for c in frame.columns if c not in options.exclude]
    inputs = graph_inputs(graph)
    names = [value.name for value in inputs]
    packed = set(names) <= {NUMERIC_INPUT, CATEGORICAL_INPUT} and not set(names) & set(columns)
    if packed or (len(inputs) == 1 and names[0] not in columns):
        plan = _by_order(frame, columns, inputs)  # matrices: columns go by order, not name
    else:
        missing = [name for name in names if name not in frame.columns]
        if missing:
            raise DraftError(
                f"the sample has no column {', '.join(map(repr, missing))} for the graph input"
                f"{'s' if len(missing) > 1 else ''} of that name (its columns: "
                f"{', '.join(frame.columns)})"
            )
        plan = [(value.name, value.type.tensor_type.elem_type) for value in inputs]
    fields = tuple(_field(frame[name], name, elem, options) for name, elem in plan)
    ignored = [c for c in columns if c not in {name for name, _ in plan}]
    notes = [f"sample columns the model does not read: {', '.join(ignored)}"] if ignored else []
    return fields, notes


def _by_order(
    frame: pd.DataFrame, columns: list[str], inputs: list[onnx.ValueInfoProto]
) -> list[tuple[str, int]]:
    """Fields for matrix inputs: the sample's numeric columns (then its string columns) in the
    sample's order, as many as the inputs' widths."""
    numbers = [c for c in columns if not _is_text(frame[c])]
    texts = [c for c in columns if _is_text(frame[c])]
    for value in inputs:
        dims = value.type.tensor_type.shape.dim
        width = dims[1].dim_value if len(dims) == 2 and dims[1].HasField("dim_value") else None
        kind = "string" if value.name == CATEGORICAL_INPUT else "numeric"
        found = texts if kind == "string" else numbers
        if width is not None and width != len(found):
            raise DraftError(
                f"graph input {value.name!r} ({type_name(value.type.tensor_type.elem_type)} "
                f"{shape_text([None, width])}) takes {width} columns but the sample has "
                f"{len(found)} {kind} columns ({', '.join(found) or 'none'}); leave out the "
                "others with --exclude (the rest must be in the model's column order)"
            )
    if texts and CATEGORICAL_INPUT not in {value.name for value in inputs}:
        raise DraftError(
            f"the model's single input {inputs[0].name!r} takes numbers only; leave out the "
            f"sample's string columns ({', '.join(texts)}) with --exclude"
        )
    floats: list[tuple[str, int]] = [(c, TensorProto.FLOAT) for c in numbers]
    return floats + [(c, TensorProto.STRING) for c in texts]


def _is_text(series: pd.Series[Any]) -> bool:
    from pandas.api.types import is_string_dtype

    return bool(is_string_dtype(series)) and not _all_bool(series)


def _all_bool(series: pd.Series[Any]) -> bool:
    values = series.dropna()
    return len(values) > 0 and all(isinstance(v, bool) for v in values.tolist())


def _field(series: pd.Series[Any], name: str, elem: int, options: FieldOptions) -> InputField:
    import pandas as pd

    text = elem == TensorProto.STRING
    missing = series.isna() | ((series == "") if _is_text(series) else False)
    present = series[~missing]
    if present.empty:
        raise DraftError(f"column {name!r} has no value in the sample")
    if text:
        if not _is_text(series):
            raise DraftError(
                f"column {name!r} holds {series.dtype} values but graph input {name!r} is "
                "tensor(string): convert the column to strings in the sample and the pipeline"
            )
        values = sorted({str(v) for v in present.tolist()})
        listed = len(values) <= options.max_categories
        return InputField(
            name=name,
            type=FieldType.CATEGORICAL,
            required=not missing.any(),
            allowed=tuple(values) if listed else None,
            description=f"{len(values)} distinct values in the sample",
        )
    if _is_text(series):
        raise DraftError(
            f"column {name!r} holds strings but graph input {name!r} is {type_name(elem)}"
        )
    if missing.any() and elem in _INTEGERS | {TensorProto.BOOL}:
        raise DraftError(
            f"column {name!r} has {int(missing.sum())} missing values but graph input {name!r} "
            f"is {type_name(elem)}, which cannot hold a missing value: fill them, or export "
            "the input as float"
        )
    if pd.api.types.is_bool_dtype(series) or _all_bool(series) or elem == TensorProto.BOOL:
        kind = FieldType.BOOL
        return InputField(name=name, type=kind, required=not missing.any())
    numbers = [float(v) for v in present.tolist()]
    if not all(math.isfinite(v) for v in numbers):
        raise DraftError(f"column {name!r} has infinite values in the sample")
    whole = all(v.is_integer() for v in numbers)
    if elem in _INTEGERS and not whole:
        raise DraftError(
            f"column {name!r} has fractional values but graph input {name!r} is {type_name(elem)}"
        )
    integer = elem in _INTEGERS or (whole and pd.api.types.is_integer_dtype(series))
    low, high = min(numbers), max(numbers)
    return InputField(
        name=name,
        type=FieldType.INT if integer else FieldType.FLOAT,
        required=not missing.any(),
        minimum=low if options.observed_ranges else (0.0 if low >= 0 else None),
        maximum=high if options.observed_ranges else None,
        description=f"sample range {low:g} .. {high:g}",
    )


def sample_rows(frame: pd.DataFrame, fields: Sequence[InputField]) -> list[dict[str, Scalar]]:
    """The rows of ``frame`` as the scorer receives them: a value per field, typed as the
    field (a missing value left out)."""
    convert: dict[FieldType, Callable[[Any], Scalar]] = {
        FieldType.FLOAT: float,
        FieldType.INT: lambda v: int(float(v)),
        FieldType.BOOL: bool,
        FieldType.CATEGORICAL: str,
    }
    rows: list[dict[str, Scalar]] = [{} for _ in range(len(frame))]
    for spec in fields:
        series = frame[spec.name]
        to = convert[spec.type]
        for row, value in zip(rows, series.tolist(), strict=True):
            if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
                continue
            row[spec.name] = to(value)
    return rows
