"""Response shapes and error statuses, for the OpenAPI document.

The scoring routes do not build these models (a 30-field pydantic model costs ~38 us a
request; :mod:`service.scorer` parses with orjson and checks with the model's own schema), but
they document exactly what those routes return; their request bodies follow the production
model (:mod:`service.openapi`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field


class ScoreResponse(BaseModel):
    """The answer to ``POST /v1/score``: production's score and decision for the transaction."""

    transaction_id: str
    request_id: str
    model_name: str
    model_version: str
    score: Annotated[float, Field(ge=0, le=1, description="Probability of fraud.")]
    decision: Annotated[str, Field(description="allow, review or block")]


class BatchResult(BaseModel):
    """One transaction's score and decision in a batch answer, in the order sent."""

    transaction_id: str
    score: float
    decision: str


class BatchResponse(BaseModel):
    """The answer to ``POST /v1/score/batch``: one result per transaction, all scored by
    ``model_version`` in one model call."""

    request_id: str
    model_name: str
    model_version: str
    results: list[BatchResult]


class ErrorResponse(BaseModel):
    """Every error answer: what went wrong, and one line per bad field or broken rule."""

    detail: str
    errors: list[str] = Field(default_factory=list, description="One line per bad field.")


_ERRORS = {
    400: "The body could not be read as text (it is not UTF-8).",
    401: "No bearer token.",
    403: "Wrong bearer token.",
    404: "No such model version.",
    409: "The move is not allowed now (state, policy, contention, an artifact that fails "
    "verification).",
    413: "Body larger than the limit.",
    422: "Every bad field, one line each.",
    503: "No production model is loaded, or the model registry (Redis) is unreachable.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entries of the error statuses a route can answer, each with the one
    error body, ``{"detail", "errors"}``."""
    return {code: {"model": ErrorResponse, "description": _ERRORS[code]} for code in codes}


ERROR_RESPONSES = error_responses(413, 422, 503)


class Liveness(BaseModel):
    """``GET /healthz``: the process and its event loop answer."""

    status: str = Field(description='Always "alive" when the process answers.')


class LoadedVersion(BaseModel):
    """A model version this scorer has loaded, verified and warmed."""

    version: str
    sha256: str
    loaded_at: float = Field(description="Unix time it was loaded.")


class ShadowRate(BaseModel):
    """A shadow version, the share of requests it scores, and whether the sidecar has loaded
    it (false while it loads, or when it could not: ``shadowline_model_swap_failures_total``)."""

    version: str
    rate: float
    loaded: bool


class RegistryState(BaseModel):
    """Whether this scorer reaches the registry (Redis), and its last error if not."""

    reachable: bool
    error: str | None


class BrokerState(BaseModel):
    """The broker as the sidecar sees it, and what waits in the local spool meanwhile."""

    reachable: bool = Field(
        description="Whether the sidecar's producer reaches the broker (its last report)."
    )
    spooled_records: int = Field(description="Score records waiting in the local spool.")
    spooled_bytes: int = Field(description="Their bytes on disk.")
    spool_error: str | None = Field(
        description="Why the configured spool could not be created, if it could not."
    )


class DegradedState(BaseModel):
    """Why this scorer serves its last-known-good model instead of the registry's production."""

    registry_version: str | None = Field(description="The registry's production version.")
    served_version: str | None = Field(description="The last-known-good version served.")
    reason: str
    since: float = Field(description="Unix time the scorer became degraded.")


class Readiness(BaseModel):
    """``GET /readyz``: 200 when a production model is loaded (degraded or not), else 503."""

    ready: bool
    model_name: str
    revision: int
    production: LoadedVersion | None
    shadows: list[ShadowRate]
    registry: RegistryState
    degraded: DegradedState | None = Field(
        description="Set while a last-known-good model is served instead of the registry's "
        "production (see docs/reliability.md)."
    )
    model_cache_error: str | None = Field(
        description="Why the last-known-good copy could not be written, if it could not."
    )
    broker: BrokerState = Field(
        description="The broker as the sidecar sees it; an outage does not fail readiness "
        "(records wait in the spool, see docs/reliability.md)."
    )
