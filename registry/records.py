"""Wire records on Kafka (JSON, versioned).  The scorer writes score records; labels arrive later.

* scores topic: key = transaction id (UTF-8), value = :class:`ScoreRecord` as JSON.
* labels topic: key = transaction id (UTF-8), value = :class:`LabelRecord` as JSON.

The scorer builds the score record as a plain dict on its hot path (``ScoreRecord`` describes
its shape and a test checks the two agree); consumers decode with :func:`decode_score`.

Labels come in as :class:`LabelInput` (a line of a label file, a record of ``POST
/v1/labels``): ``label_time`` as unix seconds or ISO 8601, and, when the validation context
carries ``now``, refused if it lies in the future beyond ``clock_skew_s`` (a label cannot
be observed before it happens; a wrong clock or a unit mistake, e.g. milliseconds, would
otherwise count as a label that has not arrived yet).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from registry.manifest import Decision, Scalar

# Version 2 adds production's exploration fields; readers accept both.
SCORE_SCHEMA_VERSION = 2
LABEL_SCHEMA_VERSION = 1
# How far in the future a label time may lie before it is refused: the sender's clock and
# ours disagree by a little.
DEFAULT_LABEL_CLOCK_SKEW_S = 300.0


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProductionScore(_Record):
    """Production's answer.  ``decision`` is the model's own decision at its thresholds.

    Exploration (opt-in, ``SHADOWLINE_EXPLORATION_SHARE``): of the transactions production
    would block, a random ``exploration_share`` is answered ``review`` instead, so their
    outcome can be observed.  ``explored`` marks those (``decision`` stays ``block``: the
    model's decision); ``exploration_share`` is the probability every would-be block had of
    being explored when this one was scored, which the evidence uses to weight them.
    """

    version: str
    score: Annotated[float, Field(ge=0.0, le=1.0)]
    decision: Decision
    latency_ms: Annotated[float, Field(ge=0.0)]
    explored: bool = False
    exploration_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0


class ShadowScore(_Record):
    """A shadow's result for one request: a score and decision, or an error."""

    version: str
    score: Annotated[float, Field(ge=0.0, le=1.0)] | None
    decision: Decision | None
    latency_ms: Annotated[float, Field(ge=0.0)] | None
    error: str | None = None


class ScoreRecord(_Record):
    """One record per scored request."""

    schema_version: Literal[1, 2] = 2
    transaction_id: Annotated[str, Field(min_length=1)]
    request_id: str
    scored_at: float  # unix seconds
    model_name: str
    production: ProductionScore
    shadows: list[ShadowScore]
    inputs: dict[str, Scalar]  # the fields as received, enough to replay the request


class LabelRecord(_Record):
    """A fraud label, observed days to months after the score (chargeback, review, ...)."""

    schema_version: Literal[1] = 1
    transaction_id: Annotated[str, Field(min_length=1)]
    is_fraud: bool
    label_time: float  # unix seconds
    source: Annotated[str, Field(min_length=1)]


class LabelInput(BaseModel):
    """A label as a sender writes it; :meth:`record` turns it into the wire record.

    ``label_time`` is unix seconds or an ISO 8601 time (UTC without a zone).  Validated with
    ``context={"now": unix seconds, "clock_skew_s": seconds}``, a ``label_time`` later than
    ``now + clock_skew_s`` is refused (``label_time: 2026-12-01T00:00:00Z is in the future
    ...``).  ``source`` may be left out where the caller has a default.
    """

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

    @field_validator("label_time")
    @classmethod
    def _not_in_the_future(cls, value: float, info: ValidationInfo) -> float:
        context = info.context if isinstance(info.context, dict) else {}
        now = context.get("now")
        if now is None:
            return value
        skew = float(context.get("clock_skew_s", DEFAULT_LABEL_CLOCK_SKEW_S))
        if value > now + skew:
            raise PydanticCustomError(
                "label_in_future",
                "{when} is in the future (now {now}; clock skew allowed {skew} s)",
                {"when": utc_text(value), "now": utc_text(now), "skew": f"{skew:g}"},
            )
        return value

    def record(self, default_source: str) -> LabelRecord:
        """The wire record, with ``default_source`` when the sender named none."""
        return LabelRecord(
            transaction_id=self.transaction_id,
            is_fraud=self.is_fraud,
            label_time=self.label_time,
            source=self.source or default_source,
        )


def _iso_seconds(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither unix seconds nor an ISO 8601 time (e.g. 2026-11-20T10:00:00Z)"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def utc_text(seconds: float) -> str:
    """Unix seconds as an ISO 8601 UTC time to the second (``2026-11-20T10:00:00Z``)."""
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):  # beyond year 9999: say the number
        return f"{seconds:g} (unix seconds)"


def encode(record: _Record) -> bytes:
    return orjson.dumps(record.model_dump(mode="json"))


def decode_score(value: bytes) -> ScoreRecord:
    """Parse a scores-topic value; raises pydantic.ValidationError naming the bad field."""
    return ScoreRecord.model_validate_json(value)


def decode_label(value: bytes) -> LabelRecord:
    """Parse a labels-topic value; raises pydantic.ValidationError naming the bad field."""
    return LabelRecord.model_validate_json(value)
