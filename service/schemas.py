"""Request and response shapes, for the OpenAPI document and the admin API.

The scoring routes do not parse through these models (a 30-field pydantic model costs ~38 us a
request; :mod:`service.scorer` parses with orjson and checks with the model's own schema), but
they document exactly what those routes accept and return.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Feature = float | int | bool | str | None


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transaction_id: Annotated[str, Field(min_length=1, max_length=128)]
    features: Annotated[
        dict[str, Feature],
        Field(description="The row, keyed by the production model's input field names."),
    ]


class ScoreResponse(BaseModel):
    transaction_id: str
    request_id: str
    model_name: str
    model_version: str
    score: Annotated[float, Field(ge=0, le=1, description="Probability of fraud.")]
    decision: Annotated[str, Field(description="allow, review or block")]


class BatchResult(BaseModel):
    transaction_id: str
    score: float
    decision: str


class BatchResponse(BaseModel):
    request_id: str
    model_name: str
    model_version: str
    results: list[BatchResult]


class ErrorResponse(BaseModel):
    detail: str
    errors: list[str] = Field(default_factory=list, description="One line per bad field.")


def request_body(max_batch: int | None = None) -> dict[str, Any]:
    """The ``openapi_extra`` that documents a scoring route's JSON body."""
    single = ScoreRequest.model_json_schema()
    schema = single
    if max_batch is not None:
        schema = {
            "type": "object",
            "required": ["transactions"],
            "properties": {
                "transactions": {
                    "type": "array", "minItems": 1, "maxItems": max_batch, "items": single,
                }
            },
        }  # fmt: skip
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "Body or batch larger than the limit."},
    422: {"model": ErrorResponse, "description": "Every bad field, one line each."},
    503: {"model": ErrorResponse, "description": "No production model is loaded."},
}
