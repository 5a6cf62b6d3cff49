"""Fraud labels from a file (JSON Lines or CSV), checked line by line before anything is sent.

Each line (a JSON object, or a CSV row under a header) has ``transaction_id``, ``is_fraud``
(true/false, 1/0), ``label_time`` (unix seconds, or an ISO 8601 time; without a zone it is
UTC) and optionally ``source`` (else the default given, e.g. ``manual``).  A file with any bad
line is refused as a whole, every bad line named with its field, so a half-sent file never has
to be untangled.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from registry.manifest import describe_validation_error
from registry.records import LabelRecord
from retrain.errors import AnalysisError

MAX_REPORTED = 10  # bad lines named in one error; the count says how many there were


class LabelFileError(AnalysisError):
    """The label file cannot be read or has bad lines (each named with its field)."""


class _LabelLine(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    schema_version: Literal[1] = 1
    transaction_id: Annotated[str, Field(min_length=1)]
    is_fraud: bool
    label_time: Annotated[float, Field(ge=0.0)]
    source: Annotated[str, Field(min_length=1)] | None = None

    @field_validator("label_time", mode="before")
    @classmethod
    def _unix_seconds(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be unix seconds or an ISO 8601 time, not a boolean")
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return _iso_seconds(value)
        if isinstance(value, int | float) and not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number of seconds")
        return value


def _iso_seconds(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither unix seconds nor an ISO 8601 time (e.g. 2026-11-20T10:00:00Z)"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _rows(path: Path, text: str) -> list[tuple[int, Any]]:
    """(line number, parsed object) for each non-blank line; unparseable lines as str."""
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        rows: list[tuple[int, Any]] = []
        try:
            for row in reader:
                if None in row:  # more cells than header columns (they come as a list)
                    rows.append((reader.line_num, "the row has more cells than the header"))
                    continue
                if not any(isinstance(v, str) and v.strip() for v in row.values()):
                    continue
                # A missing cell is a missing field, not an empty string to validate.
                rows.append(
                    (reader.line_num, {k: v for k, v in row.items() if v not in ("", None)})
                )
        except csv.Error as exc:  # e.g. a cell over the csv module's field size limit
            # (line_num counts the lines read before the one that failed)
            rows.append((reader.line_num + 1, f"not valid CSV ({exc})"))
        return rows
    parsed: list[tuple[int, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            parsed.append((number, f"not valid JSON ({exc})"))
            continue
        parsed.append((number, value if isinstance(value, dict) else "not a JSON object"))
    return parsed


def read_labels(path: Path, *, source: str = "manual") -> list[LabelRecord]:
    """The labels of ``path`` (``.csv``: CSV with a header; anything else: JSON Lines).

    Raises :class:`LabelFileError` naming the file and each bad line and field
    (``labels.jsonl line 3: is_fraud: Input should be a valid boolean``).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's BOM is not data
    except OSError as exc:
        raise LabelFileError(f"cannot read label file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise LabelFileError(f"label file {path} is not UTF-8 text ({exc.reason})") from exc
    labels: list[LabelRecord] = []
    problems: list[str] = []
    for number, row in _rows(path, text):
        if isinstance(row, str):
            problems.append(f"line {number}: {row}")
            continue
        try:
            line = _LabelLine.model_validate(row)
        except ValidationError as exc:
            problems.append(f"line {number}: {describe_validation_error(exc)}")
            continue
        labels.append(
            LabelRecord(
                transaction_id=line.transaction_id,
                is_fraud=line.is_fraud,
                label_time=line.label_time,
                source=line.source or source,
            )
        )
    if problems:
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        raise LabelFileError(
            f"label file {path} has {len(problems)} bad line(s): "
            + "; ".join(problems[:MAX_REPORTED])
            + more
        )
    if not labels:
        raise LabelFileError(f"label file {path} has no labels")
    return labels
