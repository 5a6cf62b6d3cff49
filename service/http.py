"""HTTP plumbing shared by the routes: body limits, error responses, request metrics."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import InvalidRequest, PayloadTooLarge, ServiceError
from service.metrics import ServiceMetrics

JSON = "application/json"


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes (declared or streamed) with 413."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"a request body of {declared} bytes", f"{limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge("the request body", f"{limit} bytes")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def json_response(content: object, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON)


def error_response(exc: ServiceError) -> Response:
    """The one mapping of the scorer's errors to a response: ``{"detail", "errors"}``."""
    if isinstance(exc, InvalidRequest):
        return json_response({"detail": "invalid request", "errors": exc.problems}, exc.status)
    return json_response({"detail": str(exc), "errors": []}, exc.status)


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
                observe = self._histogram.labels(path, str(status)).observe
                self._children[(path, status)] = observe
            observe(time.perf_counter() - started)
