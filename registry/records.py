"""Wire records on Kafka (JSON, versioned).  The scorer writes score records; labels arrive later.

* scores topic: key = transaction id (UTF-8), value = :class:`ScoreRecord` as JSON.
* labels topic: key = transaction id (UTF-8), value = :class:`LabelRecord` as JSON.

The scorer builds the score record as a plain dict on its hot path (``ScoreRecord`` describes
its shape and a test checks the two agree); consumers decode with :func:`decode_score`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from registry.manifest import Decision, Scalar

# Version 2 adds production's exploration fields; readers accept both.
SCORE_SCHEMA_VERSION = 2
LABEL_SCHEMA_VERSION = 1


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


def encode(record: _Record) -> bytes:
    return orjson.dumps(record.model_dump(mode="json"))


def decode_score(value: bytes) -> ScoreRecord:
    """Parse a scores-topic value; raises pydantic.ValidationError naming the bad field."""
    return ScoreRecord.model_validate_json(value)


def decode_label(value: bytes) -> LabelRecord:
    """Parse a labels-topic value; raises pydantic.ValidationError naming the bad field."""
    return LabelRecord.model_validate_json(value)
