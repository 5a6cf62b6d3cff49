"""``/docs`` needs nothing but the scorer: Swagger UI's files come from the scorer itself, and
a real Chromium that may reach 127.0.0.1 only renders the reference."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from playwright.sync_api import Route, expect, sync_playwright

from registry import ModelRegistry
from service.app import create_app
from service.settings import ServiceSettings
from tests.service.helpers import CHROMIUM, CHROMIUM_ARGS, make_production
from tests.service.server import serving


def test_the_page_and_its_files_come_from_the_scorer(
    registry: ModelRegistry, make_settings: Callable[..., ServiceSettings]
) -> None:
    make_production(registry, "v1")
    with serving(create_app(make_settings(), registry)) as client:
        page = client.get("/docs")
        script = client.get("/docs/static/swagger-ui-bundle.js")
        style = client.get("/docs/static/swagger-ui.css")
        missing = client.get("/docs/static/nothing-here.js")
        redoc = client.get("/redoc")
        paths = client.get("/openapi.json").json()["paths"]
    assert page.status_code == 200
    assert "/docs/static/swagger-ui-bundle.js" in page.text
    assert "/openapi.json" in page.text
    assert "https://" not in page.text  # nothing from elsewhere
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.text
    assert style.status_code == 200
    assert missing.status_code == 404
    assert redoc.status_code == 404  # FastAPI's ReDoc page would load from a CDN
    assert not any(p.startswith("/docs") for p in paths)


def test_the_reference_renders_with_no_network_beyond_the_scorer(
    registry: ModelRegistry, make_settings: Callable[..., ServiceSettings]
) -> None:
    make_production(registry, "v1")
    refused: list[str] = []

    def only_loopback(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with (
        serving(create_app(make_settings(), registry)) as client,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.route("**/*", only_loopback)
            page.goto(f"{str(client.base_url).rstrip('/')}/docs")
            expect(page.locator(".swagger-ui .title")).to_contain_text("Shadowline scorer")
            expect(
                page.locator(".opblock-summary-path", has_text="/v1/score").first
            ).to_be_visible()
        finally:
            browser.close()
    assert refused == []
