"""``/docs``: the OpenAPI reference in Swagger UI, served entirely by the scorer.

FastAPI's default page loads Swagger UI from a public CDN, so on a network without egress (the
usual place for a fraud-scoring service) ``/docs`` stayed blank.  The scorer serves Swagger
UI's own files (the ``swagger-ui-bundle-v2`` package) under ``/docs/static``; the page needs
nothing but this process.  ReDoc, which FastAPI also loads from a CDN, is not offered.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

STATIC = "/docs/static"


def add_docs(app: FastAPI) -> None:
    """``GET /docs`` and Swagger UI's files under ``/docs/static`` (not in the schema)."""
    app.mount(STATIC, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title}: API reference",
            swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC}/favicon-32x32.png",
        )
