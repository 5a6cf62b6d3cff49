"""Draft a complete manifest from an ONNX model and a sample of its input data.

``shadowline models init-manifest`` calls :func:`draft_manifest`: fields and types come from
the graph's inputs and the sample's columns (:mod:`registry.sample`), the sample is scored by
onnxruntime through the same input adapter registration composes, the thresholds are placed
so that the given shares of the sample would be blocked and reviewed, and golden examples are
picked across the whole range of scores.  The draft is then validated exactly as registration
will validate it, so a draft that is written registers unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import onnx
from pydantic import ValidationError

from registry.adapter import AdapterError, adapt
from registry.contract import RowCodec, scores_from_output
from registry.errors import DraftError, ValidationFailed
from registry.layouts import plan_inputs
from registry.manifest import (
    MIN_GOLDEN_EXAMPLES,
    FieldType,
    GoldenExample,
    InputSchema,
    Manifest,
    OutputSpec,
    Scalar,
    Thresholds,
    describe_validation_error,
)
from registry.sample import FieldOptions, infer_fields, sample_rows
from registry.validation import inference_session, parse_model, prepare_model

if TYPE_CHECKING:
    import pandas as pd

MAX_ROWS = 100_000  # rows of the sample scored: enough for a 0.1% block rate, fast to score
_BATCH = 10_000
_SCORE_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE}


@dataclass(frozen=True, slots=True)
class DraftOptions:
    """What ``init-manifest`` was asked for (see its ``--help``)."""

    name: str = "fraud"
    version: str = "v1"
    description: str = ""
    amount_field: str | None = None
    block_rate: float = 0.01
    review_rate: float = 0.05
    golden: int = 20
    output: str | None = None
    column: int | None = None
    fields: FieldOptions = field(default_factory=FieldOptions)


@dataclass(frozen=True, slots=True)
class Draft:
    """The manifest, the input layout, the shares of the sample at or above each threshold,
    and notes for the user."""

    manifest: Manifest
    layout: str
    block_share: float
    review_share: float
    notes: tuple[str, ...]


def draft_manifest(model: bytes, frame: pd.DataFrame, options: DraftOptions) -> Draft:
    """Draft ``model``'s manifest from the sample ``frame``.

    Raises :class:`DraftError` naming what does not fit: a missing column, a column that
    cannot feed its input, an output that is not a probability, a sample too small for the
    rates.
    """
    if not 0 < options.block_rate <= options.review_rate < 1:
        raise DraftError(
            f"rates must satisfy 0 < block rate <= review rate < 1; got block "
            f"{options.block_rate:g}, review {options.review_rate:g}"
        )
    ref = f"{options.name}:{options.version}"
    notes: list[str] = []
    if len(frame) > MAX_ROWS:
        frame = frame.sample(n=MAX_ROWS, random_state=0)
        notes.append(f"scored a random {MAX_ROWS} rows of the sample")
    proto = _quiet(lambda: parse_model(ref, model))
    fields, found = infer_fields(proto.graph, frame, options.fields)
    notes += found
    try:
        schema = InputSchema(fields=fields)
    except ValidationError as exc:
        raise DraftError(f"the sample's columns: {describe_validation_error(exc)}") from None
    plan, problems = plan_inputs(proto.graph, schema)
    if plan is None:
        raise DraftError("the model's inputs do not fit the sample: " + "; ".join(problems))
    output = _output_name(proto.graph, options.output)
    try:
        adapted = adapt(proto, plan, schema, output)
    except AdapterError as exc:
        raise DraftError(str(exc)) from None
    session = _quiet(lambda: inference_session(ref, adapted.model.SerializeToString()))
    codec = RowCodec(schema)
    rows = sample_rows(frame, schema.fields)
    raw = np.concatenate(
        [
            session.run([output], codec.encode(rows[i : i + _BATCH]))[0]
            for i in range(0, len(rows), _BATCH)
        ]
    )
    spec = OutputSpec(name=output, column=_column(output, raw, options.column))
    scores = scores_from_output(spec, raw)
    _check_probabilities(spec, scores)
    block, block_share = _threshold(scores, options.block_rate, "block")
    review, review_share = _threshold(scores, options.review_rate, "review")
    golden = _golden(rows, scores, options.golden)
    expected = scores_from_output(spec, session.run([output], codec.encode(golden))[0])
    amount, note = _amount_field(schema, options.amount_field)
    notes += [note] if note else []
    try:
        manifest = Manifest(
            name=options.name,
            version=options.version,
            description=options.description,
            input_schema=schema,
            output=spec,
            thresholds=Thresholds(review=review, block=block),
            golden_examples=tuple(
                GoldenExample(inputs=row, expected_score=float(score))
                for row, score in zip(golden, expected, strict=True)
            ),
            amount_field=amount,
        )
    except ValidationError as exc:
        raise DraftError(f"the draft is not valid: {describe_validation_error(exc)}") from None
    prepare_model(model, manifest)  # registration's own checks: a draft that is written registers
    return Draft(
        manifest=manifest,
        layout=adapted.layout,
        block_share=block_share,
        review_share=review_share,
        notes=tuple(notes),
    )


def _quiet(make: Any) -> Any:
    """Run ``make``; a ValidationFailed (not ONNX, not loadable) becomes a DraftError."""
    try:
        return make()
    except ValidationFailed as exc:
        raise DraftError("; ".join(exc.problems)) from None


def _output_name(graph: onnx.GraphProto, wanted: str | None) -> str:
    """The output holding the probabilities: ``wanted``, else the one float tensor or ZipMap
    output, else the one whose name says ``prob``."""
    names = [value.name for value in graph.output]
    if wanted is not None:
        if wanted not in names:
            raise DraftError(f"the model has no output {wanted!r} (outputs: {', '.join(names)})")
        return wanted
    candidates: list[str] = [
        value.name
        for value in graph.output
        if value.type.tensor_type.elem_type in _SCORE_TYPES or value.type.HasField("sequence_type")
    ]
    if len(candidates) > 1:
        candidates = [name for name in candidates if "prob" in name.lower()] or candidates
    if len(candidates) != 1:
        raise DraftError(
            f"cannot tell which output holds the probability (outputs: {', '.join(names)}); "
            "pass --output"
        )
    return candidates[0]


def _column(output: str, raw: npt.NDArray[Any], wanted: int | None) -> int | None:
    if wanted is not None or raw.ndim == 1 or (raw.ndim == 2 and raw.shape[1] == 1):
        return wanted
    if raw.ndim == 2 and raw.shape[1] == 2:
        return 1  # a binary classifier's columns are (not fraud, fraud)
    raise DraftError(
        f"output {output!r} has shape {['N', *raw.shape[1:]]}; pass --column to choose the "
        "column holding the probability of fraud"
    )


def _check_probabilities(spec: OutputSpec, scores: npt.NDArray[np.float64]) -> None:
    low, high = float(np.min(scores)), float(np.max(scores))
    if not (math.isfinite(low) and math.isfinite(high)) or low < 0.0 or high > 1.0:
        where = spec.name if spec.column is None else f"{spec.name}[:, {spec.column}]"
        raise DraftError(
            f"output {where} gives scores from {low:.6g} to {high:.6g} on the sample; a fraud "
            "score must be a probability in [0, 1] (add a sigmoid to the graph, or choose "
            "another --output or --column)"
        )


def _threshold(scores: npt.NDArray[np.float64], rate: float, what: str) -> tuple[float, float]:
    """The score at or above which ``rate`` of the sample falls, and the share that does
    (more than ``rate`` when scores tie)."""
    n = len(scores)
    if rate * n < 1:
        raise DraftError(
            f"the sample has {n} rows: too few to place a {what} rate of {rate:g} "
            f"(at least {math.ceil(1 / rate)} rows)"
        )
    ranked = np.sort(scores)[::-1]
    value = float(ranked[math.ceil(rate * n) - 1])
    return value, float(np.mean(scores >= value))


def _golden(
    rows: list[dict[str, Scalar]], scores: npt.NDArray[np.float64], count: int
) -> list[dict[str, Scalar]]:
    """``count`` rows spread evenly over the ranks of their scores, lowest to highest."""
    if len(rows) < MIN_GOLDEN_EXAMPLES:
        raise DraftError(
            f"the sample has {len(rows)} rows; a manifest needs at least {MIN_GOLDEN_EXAMPLES} "
            "golden examples"
        )
    order = np.argsort(scores, kind="stable")
    picks = np.unique(np.linspace(0, len(rows) - 1, max(count, MIN_GOLDEN_EXAMPLES)).round())
    return [rows[int(order[int(p)])] for p in picks]


def _amount_field(schema: InputSchema, wanted: str | None) -> tuple[str | None, str | None]:
    """``wanted``, else the one float/int field whose name contains ``amount``."""
    if wanted is not None:
        return wanted, None
    numeric = [f.name for f in schema.fields if f.type in (FieldType.FLOAT, FieldType.INT)]
    guesses = [name for name in numeric if "amount" in name.lower()]
    if len(guesses) == 1:
        return guesses[0], f"amount_field: {guesses[0]} (pass --amount-field to choose another)"
    return None, "no amount_field: pass --amount-field so evidence can put money on decisions"
