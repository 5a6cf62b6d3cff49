"""The admin guard: the bearer token is checked before any admin request body is read.

FastAPI parses a route's JSON body before its dependencies run, so a token dependency alone
let anyone make the scorer read and parse bodies of any size (four 100 MB POSTs without a token
took it from 225 MB to 1.25 GB).  :class:`AdminGuard` is a pure ASGI middleware on ``/admin``
paths that runs before routing: without the right token it answers 401 or 403 from the headers
alone, never calling ``receive``, so the body is not read at all (uvicorn stops reading the
socket once its small buffer is full, and discards whatever arrives after the answer).  With
the token, it reads the body itself up to ``max_body_bytes`` (413 beyond, declared or
streamed) and hands the route exactly those bytes.

:func:`check_token` is the one token check; the admin router's dependency calls it too, so the
routes stay guarded (and documented as bearer-protected in OpenAPI) even without the middleware.
"""

from __future__ import annotations

import hmac

from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import Forbidden, ServiceError, Unauthorized
from service.http import error_response, header, receive_body

ADMIN_PREFIX = "/admin"


def bearer_token(authorization: bytes | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None when absent or another
    scheme); the scheme is case-insensitive, as RFC 7235 says."""
    if not authorization:
        return None
    scheme, _, token = authorization.decode("latin-1").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def check_token(
    token: str | None,
    expected: SecretStr,
    *,
    what: str = "the admin API",
    setting: str = "SHADOWLINE_ADMIN_TOKEN",
    which: str = "admin",
) -> None:
    """Raise :class:`Unauthorized` without a token, :class:`Forbidden` with a wrong one
    (``what`` needs the token ``setting``; ``which`` names it in the refusal)."""
    if token is None:
        raise Unauthorized(what, setting)
    # Constant-time comparison: response timing must not reveal how much of a guess matched.
    if not hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
        raise Forbidden(which)


def is_admin_path(path: str) -> bool:
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")


class AdminGuard:
    """Pure ASGI middleware: token first, then a bounded body, for every ``/admin`` request."""

    def __init__(self, app: ASGIApp, *, token: SecretStr, max_body_bytes: int) -> None:
        self.app = app
        self._token = token
        self._limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_admin_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            authorization = header(scope, b"authorization")
            check_token(bearer_token(authorization), self._token)
            body = await receive_body(scope, receive, self._limit)
        except ServiceError as exc:
            response = error_response(exc)
            # The body was not read: closing the connection spares the server draining it.
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        if body is None:
            return  # the client went away
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:  # after the body: disconnects and the like, as they come
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
