"""ColumnCodec agrees with RowCodec: a row it passes is valid, and it encodes identically."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from registry.contract import FLOAT32_MAX, ColumnCodec, RowCodec
from registry.manifest import FieldType, InputField, InputSchema

SCHEMA = InputSchema(
    fields=(
        InputField(name="amount", type=FieldType.FLOAT, minimum=0, maximum=1000),
        InputField(name="count", type=FieldType.INT, minimum=0),
        InputField(name="flag", type=FieldType.BOOL),
        InputField(name="age", type=FieldType.FLOAT, required=False),
        InputField(name="country", type=FieldType.CATEGORICAL, allowed=("US", "DE")),
        InputField(name="category", type=FieldType.CATEGORICAL, required=False),
        InputField(name="merchant", type=FieldType.CATEGORICAL),
    )
)
NUMBERS: tuple[Any, ...] = (0.0, 1.0, 2.5, -1.0, 999.0, 1000.0, 1000.5, 3.0, 1e39, None)
STRINGS: tuple[Any, ...] = ("US", "DE", "BR", "", "x", None)


def _rows(n: int) -> list[dict[str, Any]]:
    rng = random.Random(4)
    rows = []
    for _ in range(n):
        row: dict[str, Any] = {
            "amount": rng.choice(NUMBERS),
            "count": rng.choice(NUMBERS),
            "flag": rng.choice((True, False, None)),
            "age": rng.choice(NUMBERS),
            "country": rng.choice(STRINGS),
            "category": rng.choice(STRINGS),
            "merchant": rng.choice(STRINGS),
        }
        rows.append({k: v for k, v in row.items() if v is not None or rng.random() < 0.5})
    return rows


def _columns(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    numbers = {
        name: np.array([np.nan if r.get(name) is None else float(r[name]) for r in rows])
        for name in ("amount", "count", "flag", "age")
    }
    strings = {
        name: np.array([r.get(name) for r in rows], dtype=object)
        for name in ("country", "category", "merchant")
    }
    return numbers, strings


def test_the_screen_passes_only_valid_rows_and_most_of_them() -> None:
    rows = _rows(5000)
    codec = RowCodec(SCHEMA)
    valid = np.array([not codec.check(row) for row in rows])
    screened = ColumnCodec(codec).screen(*_columns(rows), len(rows))
    assert not (screened & ~valid).any()  # never vouches for a row check() refuses
    assert (screened == valid).all()  # and, on these kinds of values, misses none
    assert 0 < valid.sum() < len(rows)
    assert FLOAT32_MAX < 1e39  # the out-of-range value above is refused by both


def test_encoding_by_columns_equals_encoding_by_rows() -> None:
    codec = RowCodec(SCHEMA)
    rows = [row for row in _rows(3000) if not codec.check(row)]
    numbers, strings = _columns(rows)
    by_columns = ColumnCodec(codec).encode(numbers, strings, len(rows))
    by_rows = codec.encode(rows)
    assert by_columns.keys() == by_rows.keys()
    np.testing.assert_array_equal(by_columns["numeric"], by_rows["numeric"])
    assert by_columns["categorical"].tolist() == by_rows["categorical"].tolist()


def test_a_field_absent_from_the_columns_is_missing_in_every_row() -> None:
    codec = ColumnCodec(RowCodec(SCHEMA))
    rows = [{"amount": 1.0, "count": 2.0, "flag": True, "country": "US", "merchant": "m"}] * 3
    numbers, strings = _columns(rows)
    del numbers["age"], strings["category"]
    assert codec.screen(numbers, strings, 3).all()
    del strings["merchant"]
    assert not codec.screen(numbers, strings, 3).any()
