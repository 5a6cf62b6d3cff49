"""The review page, ``GET /review``: a human compares a challenger with production and moves it.

The page is static (``service/static/review.*``, and ``evidence.js``, which renders the numbers
behind each verdict; read once when the app is built) and holds no data: its script asks the
operator for the admin token, keeps it in ``sessionStorage`` and reads and acts through the
admin API (:mod:`service.admin`) with ``Authorization: Bearer``.  So the page itself needs no
authentication, and every rule, refusal and audit entry is the API's.

The script inserts every value with ``textContent``; the Content-Security-Policy allows only
the page's own script and style and requests to its own origin, so even a value that slipped
through as markup could not run script or send data elsewhere.  These are ordinary FastAPI
routes, off the scoring fast lane (:mod:`service.fastpath`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources

from fastapi import APIRouter
from starlette.responses import Response

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Cheap to fetch again, and a stale script after an upgrade would call the API wrongly.
    "Cache-Control": "no-cache",
}
_ASSETS = {
    "review.html": "text/html; charset=utf-8",
    "review.js": "text/javascript; charset=utf-8",
    "evidence.js": "text/javascript; charset=utf-8",
    "review.css": "text/css; charset=utf-8",
}


def _asset(filename: str) -> Callable[[], Awaitable[Response]]:
    """A handler serving ``static/<filename>``, read once now."""
    body = resources.files("service").joinpath("static", filename).read_bytes()
    media_type = _ASSETS[filename]

    # A new Response per request: FastAPI attaches per-request state (background tasks) to it.
    async def serve() -> Response:
        return Response(body, media_type=media_type, headers=_HEADERS)

    return serve


def review_router() -> APIRouter:
    """``GET /review`` and its script and style."""
    page = _asset("review.html")
    router = APIRouter(tags=["review"])

    @router.get(
        "/review",
        response_class=Response,
        summary="The review page",
        responses={200: {"content": {"text/html": {"example": "<!doctype html>..."}}}},
    )
    async def review() -> Response:
        """The review page (HTML; it loads its data from the admin API with the token the
        operator types)."""
        return await page()

    router.add_api_route("/review/review.js", _asset("review.js"), include_in_schema=False)
    router.add_api_route("/review/evidence.js", _asset("evidence.js"), include_in_schema=False)
    router.add_api_route("/review/review.css", _asset("review.css"), include_in_schema=False)
    return router
