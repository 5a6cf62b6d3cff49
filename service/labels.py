"""``POST /v1/labels``: fraud labels pushed by chargeback and review systems (webhooks).

Body: ``{"labels": [{"transaction_id", "is_fraud", "label_time", "source"}, ...]}`` (label
time as unix seconds or ISO 8601).  The request is handled in this order, and nothing of a
refused batch is written:

1. the bearer token, ``SHADOWLINE_LABELS_TOKEN`` (not the admin token: a label sender cannot
   move models), checked before the body is read (401/403; 404 when no token is set);
2. the body, at most ``max_body_bytes`` and ``labels_max_batch`` labels (413);
3. every label validated, each problem named by index and field, including a label time in
   the future beyond ``labels_clock_skew_s`` (422);
4. idempotency per (transaction id, label time): a label taken within the dedupe window is
   not written again (a webhook retry answers 200 with it counted as a duplicate); the same
   key with another outcome or source, or a label another request is writing right now, is
   a 409 naming it (:mod:`service.label_io`);
5. the new labels produced to the labels topic, keyed by transaction id, and acknowledged by
   the broker before the answer (503 when it does not: send the batch again).

The guarantee: within the window, one label per (transaction id, label time) on the topic,
except after a failure between the broker's acknowledgement and the answer (a crash, Redis
lost), when a retry may write a label again; the analysis keeps one label per transaction
(the latest label time), so such a repeat changes no result.  docs/evidence.md says more.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, SecretStr, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from registry.connections import kafka_options, redis_client
from registry.records import LabelInput, LabelRecord, utc_text
from service.auth import check_token
from service.errors import (
    InvalidRequest,
    LabelsConflict,
    LabelsOff,
    LabelsUnavailable,
)
from service.http import read_body
from service.label_io import PENDING, LabelDedupe, LabelProducer, content, seen_key
from service.metrics import ServiceMetrics
from service.schemas import ErrorResponse
from service.scorer import MAX_TRANSACTION_ID, parse_object
from service.settings import ServiceSettings

_bearer = HTTPBearer(
    auto_error=False, scheme_name="LabelsToken", description="SHADOWLINE_LABELS_TOKEN"
)
DAY = 86_400


def example(now: float) -> dict[str, Any]:
    """The request's example: a chargeback and a review outcome of days before ``now`` (so
    the example is valid whenever the document is read: label times may not be future)."""
    hour = now - now % 3600
    return {
        "labels": [
            {
                "transaction_id": "t-1001",
                "is_fraud": True,
                "label_time": hour - 3 * DAY,
                "source": "chargeback",
            },
            {
                "transaction_id": "t-1002",
                "is_fraud": False,
                "label_time": hour - 2 * DAY,
                "source": "review",
            },
        ]
    }


class WebhookLabel(LabelInput):
    """One label of ``POST /v1/labels``: a sender must say what it is (``source``)."""

    transaction_id: Annotated[str, Field(min_length=1, max_length=MAX_TRANSACTION_ID)]
    label_time: Annotated[
        float, Field(ge=0.0, description="Unix seconds, or an ISO 8601 time (UTC if no zone).")
    ]
    source: Annotated[str, Field(min_length=1, max_length=64, examples=["chargeback"])]


class LabelsAccepted(BaseModel):
    """The answer to ``POST /v1/labels``."""

    received: int = Field(description="Labels in the request.")
    written: int = Field(description="Labels produced to the labels topic now.")
    duplicates: int = Field(description="Labels already taken (a retry), not written again.")
    message: str


def parse_labels(
    body: bytes, *, now: float, clock_skew_s: float, max_batch: int
) -> list[LabelRecord]:
    """The labels of a request body, or :class:`InvalidRequest` naming every bad label by
    index and field (``labels[2]: label_time: ... is in the future ...``), more than
    ``max_batch`` included."""
    data = parse_object(body)
    items = data.get("labels")
    if not isinstance(items, list) or not items:
        raise InvalidRequest(["labels: must be a non-empty array"])
    unknown = sorted(set(data) - {"labels"})
    if unknown:
        raise InvalidRequest(
            [f"{key}: unknown field (the body is {{'labels': [...]}})" for key in unknown]
        )
    if len(items) > max_batch:
        # 422 like a scoring batch over max_batch: the limit is the array's maxItems in the
        # OpenAPI document (413 is for bodies over the byte limit).
        raise InvalidRequest(
            [f"labels: a batch of {len(items)} labels exceeds the limit of {max_batch}"]
        )
    context = {"now": now, "clock_skew_s": clock_skew_s}
    labels, problems = [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"labels[{i}]: must be a JSON object")
            continue
        try:
            labels.append(WebhookLabel.model_validate(item, context=context).record("webhook"))
        except ValidationError as exc:
            problems += [f"labels[{i}]: {_where(error)}: {error['msg']}" for error in exc.errors()]
    if problems:
        raise InvalidRequest(problems)
    return labels


def _where(error: Any) -> str:
    return ".".join(str(part) for part in error["loc"]) or "(the label)"


class LabelIntake:
    """Takes label batches (module docstring): validate, deduplicate, produce, answer."""

    def __init__(
        self,
        dedupe: LabelDedupe,
        producer: LabelProducer,
        metrics: ServiceMetrics,
        *,
        clock_skew_s: float,
        max_batch: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._dedupe = dedupe
        self._producer = producer
        self._written = metrics.labels.labels("written").inc
        self._duplicates = metrics.labels.labels("duplicate").inc
        self.clock_skew_s = clock_skew_s
        self.max_batch = max_batch
        self._clock = clock

    def accept(self, body: bytes) -> LabelsAccepted:
        """Take one batch (blocking I/O: call it from a worker thread)."""
        labels = parse_labels(
            body, now=self._clock(), clock_skew_s=self.clock_skew_s, max_batch=self.max_batch
        )
        fresh = _unique(labels)
        claimed, held = self._dedupe.claim({key: label for key, (_, label) in fresh.items()})
        problems = [_clash(*fresh[key], value) for key, value in held.items()]
        clashes = [problem for problem in problems if problem]
        if clashes:
            self._dedupe.release(claimed)
            raise LabelsConflict(clashes)
        new = {key: fresh[key][1] for key in claimed}
        try:
            self._producer.send(list(new.values()))
        except LabelsUnavailable:
            self._dedupe.release(claimed)
            raise
        self._dedupe.confirm(new)
        duplicates = len(labels) - len(new)
        self._written(len(new))
        self._duplicates(duplicates)
        return LabelsAccepted(
            received=len(labels),
            written=len(new),
            duplicates=duplicates,
            message=f"{len(new)} label(s) written, {duplicates} already taken",
        )

    def close(self) -> None:
        """Close the producer and the Redis client (at shutdown)."""
        self._producer.close()
        self._dedupe.close()


def _unique(labels: list[LabelRecord]) -> dict[str, tuple[int, LabelRecord]]:
    """Per dedupe key, the first label (and its index) with it; a key repeated in the batch
    with another content is a 422."""
    unique: dict[str, tuple[int, LabelRecord]] = {}
    problems = []
    for i, label in enumerate(labels):
        key = seen_key(label)
        if key not in unique:
            unique[key] = (i, label)
            continue
        first, kept = unique[key]
        if content(kept) != content(label):
            problems.append(
                f"labels[{i}]: transaction {label.transaction_id} has another label at the "
                f"same label_time in labels[{first}] ({content(kept)}, here {content(label)})"
            )
    if problems:
        raise InvalidRequest(problems)
    return unique


def _clash(index: int, label: LabelRecord, held: str | None) -> str | None:
    """What is wrong with a label whose key is held (None: a plain duplicate)."""
    where = (
        f"labels[{index}]: transaction {label.transaction_id} at label_time "
        f"{utc_text(label.label_time)}"
    )
    if held is None or held.startswith(PENDING):
        return f"{where} is being written by another request now: send it again in a moment"
    if held != content(label):
        return (
            f"{where} was already taken as {held}, here {content(label)}: a correction "
            "needs a label of its own, with a later label_time"
        )
    return None


def labels_router(intake: LabelIntake, token: SecretStr | None, limit: int) -> APIRouter:
    """``POST /v1/labels`` with ``intake``, guarded by ``token`` (None: 404, intake off: a
    turned-off feature is not a server failure, and must not page anyone as a 5xx would)."""

    async def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if token is None:
            raise LabelsOff()
        check_token(
            None if credentials is None else credentials.credentials,
            token,
            what="POST /v1/labels",
            setting="SHADOWLINE_LABELS_TOKEN",
            which="labels",
        )

    router = APIRouter(tags=["labels"])

    # The route declares no body parameter: FastAPI reads nothing before the token check,
    # and the body is read here, within ``limit`` (its schema is documented below).
    @router.post(
        "/v1/labels",
        summary="Take fraud labels",
        dependencies=[Depends(require_token)],
        openapi_extra=_request_body(intake),
        responses=_RESPONSES,
    )
    async def post_labels(request: Request) -> LabelsAccepted:
        """Take a batch of fraud labels (chargebacks, review outcomes) and write them to the
        labels topic; a retry of the same labels is answered without writing them again."""
        body = await read_body(request, limit)
        return await run_in_threadpool(intake.accept, body)

    return router


def _request_body(intake: LabelIntake) -> dict[str, Any]:
    item = WebhookLabel.model_json_schema()
    # A label time may not be in the future: the document states the bound as it was when the
    # server started, which stays true as the clock moves on (the server's bound only grows).
    now = time.time()
    latest = now + intake.clock_skew_s
    item["properties"]["label_time"] = {
        "type": "number",
        "minimum": 0,
        "maximum": latest,
        "description": "Unix seconds (an ISO 8601 time is taken too, UTC if no zone); never "
        "later than now plus the clock skew allowed: the maximum shown is that bound when the "
        "server started.",
    }
    schema = {
        "type": "object",
        "required": ["labels"],
        "additionalProperties": False,
        "properties": {
            "labels": {
                "type": "array",
                "minItems": 1,
                "maxItems": intake.max_batch,
                "items": item,
            }
        },
    }
    media = {"schema": schema, "example": example(now)}
    return {"requestBody": {"required": True, "content": {"application/json": media}}}


_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No bearer token."},
    403: {"model": ErrorResponse, "description": "Not the labels token."},
    404: {"model": ErrorResponse, "description": "Intake off: no labels token is configured."},
    409: {"model": ErrorResponse, "description": "A label clashes with one already taken."},
    413: {"model": ErrorResponse, "description": "Body or batch larger than the limit."},
    422: {"model": ErrorResponse, "description": "Every bad label, by index and field."},
    503: {"model": ErrorResponse, "description": "Broker or Redis unreachable: send again."},
}


def label_intake(settings: ServiceSettings, metrics: ServiceMetrics) -> LabelIntake:
    """The intake the settings describe (nothing connects before the first batch)."""
    timeout_s = settings.labels_ack_timeout_s
    return LabelIntake(
        # A claim outlives the longest write (flush, then each acknowledgement).
        LabelDedupe(
            redis_client(settings),
            window_s=settings.labels_dedupe_window_s,
            claim_s=2 * timeout_s + 10,
        ),
        LabelProducer(
            settings.kafka_servers,
            settings.labels_topic,
            timeout_s=timeout_s,
            client_options=kafka_options(settings),
        ),
        metrics,
        clock_skew_s=settings.labels_clock_skew_s,
        max_batch=settings.labels_max_batch,
    )
