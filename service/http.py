"""HTTP plumbing shared by the routes: body limits, the error mapping, request metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
import redis
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.errors import (
    AlreadyRegistered,
    ArtifactRefused,
    Contention,
    IllegalTransition,
    ManifestError,
    ModelNotFound,
    PolicyViolation,
    RegistryError,
    ValidationFailed,
)
from registry.errors import InvalidRequest as RegistryInvalidRequest
from service.errors import InvalidRequest, PayloadTooLarge, ServiceError
from service.metrics import ServiceMetrics, observer

JSON = "application/json"


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of request header ``name`` (lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def receive_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The request body from its ASGI messages, refusing more than ``limit`` bytes with 413:
    a declared Content-Length before anything is read, a streamed body as soon as it passes
    the limit.  None when the client went away first."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"a request body of {declared.decode()} bytes", f"{limit} bytes")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge("the request body", f"{limit} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_body(request: Request, limit: int) -> bytes:
    """:func:`receive_body` for a route's ``Request`` (empty when the client went away)."""
    return await receive_body(request.scope, request.receive, limit) or b""


def json_response(content: object, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON)


_REGISTRY_STATUS: tuple[tuple[type[RegistryError], int], ...] = (
    (ModelNotFound, 404),
    (IllegalTransition, 409),
    (PolicyViolation, 409),
    (Contention, 409),
    (AlreadyRegistered, 409),
    (ArtifactRefused, 409),
    (RegistryInvalidRequest, 422),
    (ValidationFailed, 422),
    (ManifestError, 422),
)


def error_payload(exc: ServiceError) -> bytes:
    """The JSON body for one of the scorer's own errors."""
    if isinstance(exc, InvalidRequest):
        return orjson.dumps({"detail": "invalid request", "errors": exc.problems})
    return orjson.dumps({"detail": str(exc), "errors": list(getattr(exc, "problems", ()))})


def validation_problems(errors: Sequence[Mapping[str, Any]]) -> list[str]:
    """FastAPI's validation errors as ``"field: message"`` lines, like the scoring routes'.

    Built from each error's location and message only: the offending input is never echoed
    (it may be a NaN or an infinity, which JSON cannot carry, or a secret pasted by mistake).
    """
    problems = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error")
            problems.append(
                "body: invalid JSON" + (f" ({reason})" if isinstance(reason, str) else "")
            )
            continue
        where = ".".join(loc[1:] if len(loc) > 1 and loc[0] == "body" else loc) or "body"
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return problems


def error_response(exc: Exception) -> Response:
    """The one mapping of errors to responses, ``{"detail", "errors"}``: the scorer's own
    errors carry their status; registry errors map to 404/409/422 (a move refused because
    the stored artifact fails verification is a 409; another artifact store failure is a
    500); a body FastAPI refuses is a 422 naming each field; the framework's own errors (an
    unknown path, a method not allowed, a body that is not UTF-8) keep their status and
    headers; an unreachable Redis is a 503."""
    if isinstance(exc, ServiceError):
        response = Response(error_payload(exc), status_code=exc.status, media_type=JSON)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        if exc.status == 413:  # the rest of the body is not read: close rather than drain it
            response.headers["Connection"] = "close"
        return response
    if isinstance(exc, RegistryError):
        status = next((code for kind, code in _REGISTRY_STATUS if isinstance(exc, kind)), 500)
        errors = list(getattr(exc, "violations", ()) or getattr(exc, "problems", ()))
        return json_response({"detail": str(exc), "errors": errors}, status)
    if isinstance(exc, RequestValidationError):
        return json_response(
            {"detail": "invalid request", "errors": validation_problems(exc.errors())}, 422
        )
    if isinstance(exc, StarletteHTTPException):  # the framework's own: 400, 404, 405
        return Response(
            orjson.dumps({"detail": str(exc.detail), "errors": []}),
            status_code=exc.status_code,
            headers=exc.headers,
            media_type=JSON,
        )
    if isinstance(exc, redis.RedisError):
        detail = f"the model registry (Redis) is unreachable: {exc}"
        return json_response({"detail": detail, "errors": []}, 503)
    raise exc  # not ours to map: Starlette turns it into a 500 and logs it


class RequestMetrics:
    """Pure ASGI middleware: request latency by route template and status code.

    Pure ASGI rather than ``BaseHTTPMiddleware`` (which costs a task per request); children
    are cached per (route, status).
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self._histogram = metrics.request_seconds
        self._children: dict[tuple[str, int], Callable[[float], None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            observe = self._children.get((path, status))
            if observe is None:
                observe = observer(self._histogram.labels(path, str(status)))
                self._children[(path, status)] = observe
            observe(time.perf_counter() - started)


_NOSNIFF = (b"x-content-type-options", b"nosniff")


class NoSniff:
    """Pure ASGI middleware: every response says ``X-Content-Type-Options: nosniff``, so a
    browser never reads a JSON answer (which may echo a field name) as a script or a page.
    The scoring fast lane (:mod:`service.fastpath`) adds the same header itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(key.lower() == _NOSNIFF[0] for key, _ in headers):
                    headers.append(_NOSNIFF)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_nosniff)
