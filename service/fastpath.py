"""The scoring fast lane: ``POST /v1/score`` and ``/v1/score/batch`` below FastAPI's stack.

FastAPI declares both routes (their bodies and responses are in the OpenAPI document, and with
``SHADOWLINE_FAST_PATH=false`` they serve), but by default :class:`ScorerApp` hands these two
requests straight to the :class:`~service.scorer.Scorer`: the middleware stack, routing and
``Request``/``Response`` objects around a 50 us scoring call cost another ~35 us (measured
in-process: 86-111 us through the stack against 49-72 us for the scorer alone).  Responses are
the same: the same body limit, the same error mapping, the same request metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from service.errors import ServiceError
from service.http import error_payload, receive_body
from service.metrics import ServiceMetrics, observer

Handler = Callable[[bytes], bytes]
_JSON = (b"content-type", b"application/json")
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_CLOSE = (b"connection", b"close")  # as service.http.NoSniff adds elsewhere


class FastLane:
    """Serves the scoring routes from raw ASGI messages."""

    def __init__(self, routes: dict[str, tuple[Handler, int]], metrics: ServiceMetrics) -> None:
        self._routes = routes  # path -> (handler, body limit in bytes)
        self._histogram = metrics.request_seconds
        self._observers: dict[tuple[str, int], Callable[[float], None]] = {}

    def match(self, scope: Scope) -> tuple[Handler, int] | None:
        """The handler and body limit for this request, or None when it is not a scoring
        request."""
        if scope["type"] == "http" and scope["method"] == "POST":
            return self._routes.get(scope["path"])
        return None

    async def serve(
        self, route: tuple[Handler, int], scope: Scope, receive: Receive, send: Send
    ) -> None:
        handler, limit = route
        started = time.perf_counter()
        status = 500
        try:
            try:
                body = await receive_body(scope, receive, limit)
                if body is None:
                    return  # the client went away
                payload, status = handler(body), 200
            except ServiceError as exc:
                payload, status = error_payload(exc), exc.status
            headers = [_JSON, _NOSNIFF, (b"content-length", b"%d" % len(payload))]
            if status == 413:  # the rest of the body is not read: close rather than drain it
                headers.append(_CLOSE)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
        finally:
            self._observe(scope["path"], status, time.perf_counter() - started)

    def _observe(self, route: str, status: int, seconds: float) -> None:
        observe = self._observers.get((route, status))
        if observe is None:
            observe = observer(self._histogram.labels(route, str(status)))
            self._observers[(route, status)] = observe
        observe(seconds)


class ScorerApp(FastAPI):
    """A FastAPI app whose scoring requests may take the :class:`FastLane`, and whose OpenAPI
    document may be rewritten per request (``document``: the scoring bodies follow the
    production model, see :mod:`service.openapi`)."""

    lane: FastLane | None = None
    document: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def openapi(self) -> dict[str, Any]:
        base = super().openapi()
        return base if self.document is None else self.document(base)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.lane
        if lane is not None:
            route = lane.match(scope)
            if route is not None:
                await lane.serve(route, scope, receive, send)
                return
        await super().__call__(scope, receive, send)
