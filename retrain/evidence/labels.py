"""Fraud labels from a file (JSON Lines or CSV), checked line by line before anything is sent.

Each line (a JSON object, or a CSV row under a header) has ``transaction_id``, ``is_fraud``
(true/false, 1/0), ``label_time`` (unix seconds, or an ISO 8601 time; without a zone it is
UTC) and optionally ``source`` (else the default given, e.g. ``manual``).  A label time in
the future (beyond a small clock skew) is a bad line: a label cannot be observed before it
happens.  A file with any bad line is refused as a whole, every bad line named with its field,
so a half-sent file never has to be untangled.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from registry.manifest import describe_validation_error
from registry.records import DEFAULT_LABEL_CLOCK_SKEW_S, LabelInput, LabelRecord
from retrain.errors import AnalysisError

MAX_REPORTED = 10  # bad lines named in one error; the count says how many there were


class LabelFileError(AnalysisError):
    """The label file cannot be read or has bad lines (each named with its field)."""


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


def read_labels(
    path: Path,
    *,
    source: str = "manual",
    now: float | None = None,
    clock_skew_s: float = DEFAULT_LABEL_CLOCK_SKEW_S,
) -> list[LabelRecord]:
    """The labels of ``path`` (``.csv``: CSV with a header; anything else: JSON Lines).

    Raises :class:`LabelFileError` naming the file and each bad line and field
    (``labels.jsonl line 3: is_fraud: Input should be a valid boolean``), including a label
    time later than ``now`` (default: the current time) plus ``clock_skew_s``.
    """
    context = {"now": time.time() if now is None else now, "clock_skew_s": clock_skew_s}
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
            line = LabelInput.model_validate(row, context=context)
        except ValidationError as exc:
            problems.append(f"line {number}: {describe_validation_error(exc)}")
            continue
        labels.append(line.record(source))
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
