"""The transaction data schema every source delivers, and the model's input schema.

A source hands the pipeline one DataFrame with exactly these columns (extra columns are
dropped).  ``check_frame`` is the single place that decides whether data fits; its messages
name the file and the column.

The model's inputs (:data:`MODEL_SCHEMA`) are what the scorer receives per request: the raw
transaction fields plus the card's velocity aggregates, which in production come from the
feature store and here are computed by the ``features`` step from the transaction history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

from registry.manifest import FieldType, InputField, InputSchema
from retrain.errors import DataError

Kind = Literal["string", "float", "int", "bool", "timestamp"]


@dataclass(frozen=True)
class Column:
    """One column of the transaction data."""

    name: str
    kind: Kind
    nullable: bool
    description: str


COLUMNS: tuple[Column, ...] = (
    Column(
        name="transaction_id", kind="string", nullable=False, description="unique id of the payment"
    ),
    Column(
        name="card_id",
        kind="string",
        nullable=False,
        description="pseudonymous card id (velocity is computed per card)",
    ),
    Column(name="merchant_id", kind="string", nullable=False, description="merchant id"),
    Column(
        name="event_time",
        kind="timestamp",
        nullable=False,
        description="when the payment was authorised (UTC)",
    ),
    Column(
        name="amount",
        kind="float",
        nullable=False,
        description="amount in the transaction currency, > 0",
    ),
    Column(name="currency", kind="string", nullable=False, description="ISO 4217 code, e.g. EUR"),
    Column(
        name="merchant_category",
        kind="string",
        nullable=False,
        description="merchant category, e.g. electronics",
    ),
    Column(
        name="merchant_country",
        kind="string",
        nullable=False,
        description="ISO 3166 alpha-2 code of the merchant",
    ),
    Column(
        name="card_country",
        kind="string",
        nullable=False,
        description="ISO 3166 alpha-2 code of the issuing country",
    ),
    Column(
        name="card_age_days",
        kind="int",
        nullable=False,
        description="days since the card was issued, >= 0",
    ),
    Column(
        name="device_age_days",
        kind="float",
        nullable=True,
        description="days since the device was first seen; empty for card-present payments",
    ),
    Column(
        name="is_fraud",
        kind="bool",
        nullable=False,
        description="1 when a fraud report (chargeback) arrived, else 0",
    ),
    Column(
        name="label_time",
        kind="timestamp",
        nullable=True,
        description="when the fraud report arrived (UTC); empty when is_fraud is 0",
    ),
)
COLUMN_NAMES = tuple(c.name for c in COLUMNS)

NUMERIC_FEATURES: tuple[str, ...] = (
    "amount",
    "card_age_days",
    "device_age_days",
    "hour",
    "txn_count_1h",
    "txn_count_24h",
    "amount_sum_1h",
    "amount_sum_24h",
)
CATEGORICAL_FEATURES: tuple[str, ...] = (
    "currency",
    "merchant_category",
    "merchant_country",
    "card_country",
)

MODEL_SCHEMA = InputSchema(
    fields=(
        InputField(
            name="amount",
            type=FieldType.FLOAT,
            minimum=0,
            maximum=1_000_000,
            description="payment amount",
        ),
        InputField(name="card_age_days", type=FieldType.INT, minimum=0),
        InputField(
            name="device_age_days",
            type=FieldType.FLOAT,
            required=False,
            minimum=0,
            description="missing for card-present payments",
        ),
        InputField(
            name="hour",
            type=FieldType.INT,
            minimum=0,
            maximum=23,
            description="hour of the day, UTC",
        ),
        InputField(
            name="txn_count_1h",
            type=FieldType.INT,
            minimum=0,
            description="earlier payments of this card in the last hour",
        ),
        InputField(
            name="txn_count_24h",
            type=FieldType.INT,
            minimum=0,
            description="earlier payments of this card in the last 24 hours",
        ),
        InputField(name="amount_sum_1h", type=FieldType.FLOAT, minimum=0),
        InputField(name="amount_sum_24h", type=FieldType.FLOAT, minimum=0),
        InputField(name="currency", type=FieldType.CATEGORICAL),
        InputField(name="merchant_category", type=FieldType.CATEGORICAL),
        InputField(name="merchant_country", type=FieldType.CATEGORICAL),
        InputField(name="card_country", type=FieldType.CATEGORICAL),
    )
)
assert MODEL_SCHEMA.names == NUMERIC_FEATURES + CATEGORICAL_FEATURES


def _kind_problem(series: pd.Series, kind: Kind) -> str | None:
    values = series.dropna()
    if values.empty:
        return None  # an all-empty column is only a problem when it may not be empty
    if kind == "string":
        ok = pd.api.types.is_string_dtype(series) or bool(
            values.map(lambda v: isinstance(v, str)).all()
        )
        return None if ok else "must hold strings"
    if kind == "timestamp":
        if pd.api.types.is_datetime64_any_dtype(series):
            return None
        try:
            pd.to_datetime(values, utc=True, format="ISO8601")
        except (ValueError, TypeError):
            return "must hold ISO 8601 timestamps"
        return None
    if kind == "bool":
        if pd.api.types.is_bool_dtype(series):
            return None
        numeric = pd.to_numeric(values, errors="coerce")
        return None if numeric.isin([0, 1]).all() else "must hold 0 or 1"
    if pd.api.types.is_bool_dtype(series):
        return "must hold numbers"
    if not pd.api.types.is_numeric_dtype(values):
        if not values.map(lambda v: isinstance(v, int | float) and not isinstance(v, bool)).all():
            return "must hold numbers"
        values = values.astype("float64")
    if kind == "int" and not (values == values.round()).all():
        return "must hold whole numbers"
    return None


def check_frame(frame: pd.DataFrame, origin: str, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """The frame reduced to :data:`COLUMNS` in order, with normalised types.

    ``extra`` names numeric columns to keep after them when present (model inputs a source
    recorded as the scorer received them, e.g. velocity features from the topic archive).

    Raises :class:`DataError` naming ``origin`` (a file name, or "synthetic") and the first
    column that is missing, of the wrong type, or empty where it must not be.
    """
    for column in COLUMNS:
        if column.name not in frame.columns:
            raise DataError(f"{origin}: column '{column.name}' is missing")
        series = frame[column.name]
        problem = _kind_problem(series, column.kind)
        if problem is not None:
            raise DataError(f"{origin}: column '{column.name}' {problem} (got {series.dtype})")
        if not column.nullable and series.isna().any():
            row = int(series.isna().to_numpy().argmax())
            raise DataError(f"{origin}: column '{column.name}' is empty in row {row}")
    kept = [name for name in extra if name in frame.columns]
    for name in kept:
        if _kind_problem(frame[name], "float") is not None:
            raise DataError(
                f"{origin}: column '{name}' must hold numbers (got {frame[name].dtype})"
            )
    out = frame.loc[:, [*COLUMN_NAMES, *kept]].copy()
    for name in kept:
        out[name] = pd.to_numeric(out[name]).astype("float64")
    for column in COLUMNS:
        if column.kind == "timestamp":
            out[column.name] = pd.to_datetime(out[column.name], utc=True, format="ISO8601")
        elif column.kind == "string":
            out[column.name] = out[column.name].astype(str)
        elif column.kind == "float":
            out[column.name] = pd.to_numeric(out[column.name]).astype("float64")
        elif column.kind == "int":
            out[column.name] = out[column.name].astype("int64")
        else:
            out[column.name] = out[column.name].astype("int8")
    return out
