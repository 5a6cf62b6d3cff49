"""Scoring a frame of payments with an ONNX model through the shared contract.

The retrain pipeline scores candidates and production exactly as the scorer does: rows are
checked and encoded by :class:`registry.contract.RowCodec` and the graph runs in onnxruntime.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from registry.contract import RowCodec, scores_from_output
from registry.manifest import InputSchema, OutputSpec, Scalar

_BATCH = 20_000


def rows_of(frame: pd.DataFrame, schema: InputSchema) -> list[dict[str, Scalar]]:
    """The rows as the scorer receives them: plain Python values, missing -> absent (None)."""
    present = [name for name in schema.names if name in frame.columns]
    part = frame.loc[:, present]
    records = part.astype(object).where(part.notna(), None).to_dict("records")
    return [{str(k): v for k, v in record.items()} for record in records]


@dataclass(frozen=True)
class Scored:
    """Scores of the rows the model accepted; ``accepted`` marks them among all rows."""

    scores: npt.NDArray[np.float64]
    accepted: npt.NDArray[np.bool_]
    first_problem: str | None


def score_frame(
    artifact: bytes, schema: InputSchema, output: OutputSpec, frame: pd.DataFrame
) -> Scored:
    """Score every row ``schema`` accepts (others are reported, not scored)."""
    import onnxruntime as ort

    codec = RowCodec(schema)
    rows = rows_of(frame, schema)
    accepted = np.ones(len(rows), dtype=bool)
    first_problem: str | None = None
    for i, row in enumerate(rows):
        problems = codec.check(row)
        if problems:
            accepted[i] = False
            first_problem = first_problem or f"row {i}: {problems[0]}"
    good = [row for row, ok in zip(rows, accepted, strict=True) if ok]
    session = ort.InferenceSession(artifact, providers=["CPUExecutionProvider"])
    parts = []
    for start in range(0, len(good), _BATCH):
        feeds = codec.encode(good[start : start + _BATCH])
        raw = session.run([output.name], feeds)[0]
        parts.append(scores_from_output(output, np.asarray(raw)))
    scores = np.concatenate(parts) if parts else np.zeros(0)
    return Scored(scores=scores, accepted=accepted, first_problem=first_problem)
