"""The model contract: what a model takes, what it returns, and where it came from.

A Shadowline model is an ONNX graph that includes its own preprocessing, plus this manifest.
The input convention every model follows (see :mod:`registry.contract`):

* graph input ``numeric``: float32, shape ``[N, n_numeric]`` -- the ``float``, ``int`` and
  ``bool`` fields in manifest order (bool as 0/1, a missing optional value as NaN);
* graph input ``categorical``: string, shape ``[N, n_categorical]`` -- the ``categorical``
  fields in manifest order (a missing optional value as ""); absent when there are none.

Two packed inputs rather than one per field: onnxruntime spends ~1.5 us per input per call,
which with 30 per-field inputs was 7x the model's own work (measured: 52 us against 7.5 us).
A model exported with one input per field (or one float matrix) registers all the same: an
adapter composed in front of it at registration takes the packed inputs
(:mod:`registry.layouts`, :mod:`registry.adapter`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from registry.errors import ManifestError

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$"
FIELD_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
MIN_GOLDEN_EXAMPLES = 10

Scalar = float | int | bool | str | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldType(StrEnum):
    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    CATEGORICAL = "categorical"


class InputField(_Strict):
    """One input of the model: its type, whether it may be missing, its allowed values."""

    name: Annotated[str, Field(pattern=FIELD_PATTERN)]
    type: FieldType
    required: bool = True
    minimum: float | None = None  # numeric fields only, inclusive
    maximum: float | None = None  # numeric fields only, inclusive
    allowed: tuple[str, ...] | None = None  # categorical only; None = any string
    description: str = ""

    @model_validator(mode="after")
    def _bounds_fit_the_type(self) -> Self:
        numeric = self.type is not FieldType.CATEGORICAL
        if not numeric and (self.minimum is not None or self.maximum is not None):
            raise ValueError(f"field {self.name}: minimum/maximum apply to numeric fields only")
        if numeric and self.allowed is not None:
            raise ValueError(f"field {self.name}: allowed values apply to categorical fields only")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(
                f"field {self.name}: minimum {self.minimum:g} > maximum {self.maximum:g}"
            )
        if self.allowed is not None and not self.allowed:
            raise ValueError(f"field {self.name}: allowed values must not be empty")
        return self

    @property
    def is_numeric(self) -> bool:
        return self.type is not FieldType.CATEGORICAL


class InputSchema(_Strict):
    """The ordered fields of a model's input."""

    fields: Annotated[tuple[InputField, ...], Field(min_length=1)]

    @field_validator("fields")
    @classmethod
    def _unique_names(cls, fields: tuple[InputField, ...]) -> tuple[InputField, ...]:
        seen: set[str] = set()
        for item in fields:
            if item.name in seen:
                raise ValueError(f"field {item.name} appears twice")
            seen.add(item.name)
        return fields

    @property
    def numeric(self) -> tuple[InputField, ...]:
        return tuple(f for f in self.fields if f.is_numeric)

    @property
    def categorical(self) -> tuple[InputField, ...]:
        return tuple(f for f in self.fields if not f.is_numeric)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


class Decision(StrEnum):
    ALLOW = "allow"
    REVIEW = "review"
    BLOCK = "block"


class Thresholds(_Strict):
    """Decision thresholds on the fraud probability: block if >= block, review if >= review."""

    review: Annotated[float, Field(ge=0.0, le=1.0)]
    block: Annotated[float, Field(ge=0.0, le=1.0)]

    @model_validator(mode="after")
    def _review_below_block(self) -> Self:
        if self.review > self.block:
            raise ValueError(f"review threshold {self.review} is above block {self.block}")
        return self

    def decide(self, score: float) -> Decision:
        if score >= self.block:
            return Decision.BLOCK
        if score >= self.review:
            return Decision.REVIEW
        return Decision.ALLOW

    def decisions(self, scores: Iterable[float]) -> list[str]:
        """:meth:`decide`'s values (plain strings) for many scores: the sidecar's shadow
        batches, where an enum member and its ``.value`` a score cost more than the rule."""
        block, review = self.block, self.review
        blocked, reviewed, allowed = (
            Decision.BLOCK.value,
            Decision.REVIEW.value,
            Decision.ALLOW.value,
        )
        return [
            blocked if score >= block else reviewed if score >= review else allowed
            for score in scores
        ]


class OutputSpec(_Strict):
    """Which graph output holds the fraud probability.

    ``column`` selects a column when the output is ``[N, k]`` (e.g. 1 for a classifier's
    ``probabilities`` output of shape ``[N, 2]``); None for an output of shape ``[N]`` or
    ``[N, 1]``.
    """

    name: Annotated[str, Field(min_length=1)] = "probability"
    column: Annotated[int, Field(ge=0)] | None = None
    meaning: Literal["probability_of_fraud"] = "probability_of_fraud"


class Lineage(_Strict):
    """Where the model came from.  Every field is optional for models trained elsewhere."""

    pipeline_run_id: str | None = None
    code_version: str | None = None
    training_window_start: datetime | None = None
    training_window_end: datetime | None = None
    data_fingerprint: str | None = None
    parent_version: str | None = None
    trainer: str | None = None
    seed: int | None = None
    # Set on a control model: production version ``control_of``'s recipe retrained on the same
    # data with another seed.  Shadowed beside a challenger, it measures how much retraining
    # alone moves the metrics (the noise floor of the evidence).
    control_of: str | None = None
    # What the training data was read from (a source's description) and, for a partitioned
    # source such as the topic archive, the partitions it read (``scores/date=2026-11-30``).
    data_source: str | None = None
    data_partitions: tuple[str, ...] = ()
    # How to train this model again, in the words of the pipeline that trained it (for
    # Shadowline's: the as-of time of its data, window lengths, label maturity, rates, trainer
    # and hyper-parameters).  Opaque to the registry; a control retrains from it.
    recipe: dict[str, Scalar] | None = None
    # Filled by registration when it composed an input adapter (or unzipped a ZipMap output):
    # the sha256 of the model file as given, whose bytes the artifact store keeps too, and
    # how its inputs were laid out.
    source_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    source_layout: str | None = None


class GoldenExample(_Strict):
    """An input row and the score the model must give it (checked at registration)."""

    inputs: dict[str, Scalar]
    expected_score: Annotated[float, Field(ge=0.0, le=1.0)]


class Manifest(_Strict):
    """Everything Shadowline knows about one model version.

    ``sha256`` and ``created_at`` may be left out of a manifest file: registration fills them
    from the artifact and the clock, and refuses a given ``sha256`` that does not match.
    """

    schema_version: Literal[1] = 1
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    version: Annotated[str, Field(pattern=VERSION_PATTERN)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    created_at: datetime | None = None
    description: str = ""
    input_schema: InputSchema
    output: OutputSpec = OutputSpec()
    thresholds: Thresholds
    metrics: dict[str, float] = Field(default_factory=dict)
    lineage: Lineage = Lineage()
    golden_examples: Annotated[tuple[GoldenExample, ...], Field(min_length=MIN_GOLDEN_EXAMPLES)]
    # The field holding the transaction's amount, which evidence uses to put money on the
    # decisions two models disagree on; a float or int field of the input schema.
    amount_field: str | None = None

    @model_validator(mode="after")
    def _amount_is_a_numeric_field(self) -> Self:
        if self.amount_field is None:
            return self
        fields = {f.name: f for f in self.input_schema.fields}
        spec = fields.get(self.amount_field)
        if spec is None:
            raise ValueError(
                f"amount_field {self.amount_field!r} is not a field of the input schema "
                f"(fields: {', '.join(fields)})"
            )
        if spec.type not in (FieldType.FLOAT, FieldType.INT):
            raise ValueError(
                f"amount_field {self.amount_field!r} is a {spec.type.value} field; "
                "it must name a float or int field"
            )
        return self

    @field_validator("metrics")
    @classmethod
    def _finite_metrics(cls, metrics: dict[str, float]) -> dict[str, float]:
        for key, value in metrics.items():
            if not math.isfinite(value):
                raise ValueError(f"metric {key} is {value}, not a finite number")
        return metrics

    @field_validator("created_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @property
    def ref(self) -> str:
        """``name:version``, how messages and logs name a model."""
        return f"{self.name}:{self.version}"


def describe_validation_error(exc: ValidationError) -> str:
    """Each problem of a pydantic error as ``field.path: message``, joined with "; "."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '(top level)'}: {error['msg']}"
        for error in exc.errors()
    )


def read_manifest(path: Path | str) -> Manifest:
    """Load a manifest from a JSON file.

    Raises :class:`ManifestError` naming the file and each bad field
    (``manifest m.json is not valid: thresholds: Field required``).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ManifestError(f"manifest {path} is not UTF-8 text ({exc.reason})") from exc
    try:
        return Manifest.model_validate_json(text)
    except ValidationError as exc:
        raise ManifestError(
            f"manifest {path} is not valid: {describe_validation_error(exc)}"
        ) from None
