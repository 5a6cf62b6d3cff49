"""The review page: served static and data-free, and driven end to end in a real Chromium.

The browser test runs a real scorer (real Redis, real broker) and the system's
``/usr/bin/chromium`` through Playwright (installed by ``make system-deps``; Playwright's own
browser download is never used).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from httpx import Client
from playwright.sync_api import Browser, Page, expect, sync_playwright

from registry import ModelRegistry, ShadowEvidence, State
from service.app import create_app
from service.review import CONTENT_SECURITY_POLICY
from service.settings import ServiceSettings
from tests.service.conftest import ADMIN_TOKEN, make_production, register, wait_until
from tests.service.server import serving

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip


def evidence(challenger: float, production: float) -> ShadowEvidence:
    return ShadowEvidence(
        production_version="v1", shadow_records=5000, labeled_records=300,
        challenger_value=challenger, production_value=production,
        window_start=datetime(2026, 11, 1, tzinfo=UTC),
        window_end=datetime(2026, 11, 15, tzinfo=UTC),
    )  # fmt: skip


def test_the_page_is_static_with_a_content_security_policy(
    registry: ModelRegistry, make_settings: Callable[..., ServiceSettings]
) -> None:
    make_production(registry, "prod-2026-11-20")
    sha = registry.manifest("fraud", "prod-2026-11-20").sha256
    assert sha is not None
    with serving(create_app(make_settings(), registry)) as client:
        page = client.get("/review")
        script = client.get("/review/review.js")
        style = client.get("/review/review.css")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY
    assert page.headers["x-content-type-options"] == "nosniff"
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    assert '<script src="/review/review.js" defer></script>' in page.text
    for body in (page.text, script.text, style.text):
        assert "prod-2026-11-20" not in body
        assert sha not in body
        assert ADMIN_TOKEN not in body
    # Values reach the page as text only.
    assert "innerHTML" not in script.text
    assert "insertAdjacentHTML" not in script.text


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def test_review_approve_promote_rollback_in_a_browser(
    browser: Browser, registry: ModelRegistry, make_settings: Callable[..., ServiceSettings]
) -> None:
    make_production(registry, "v1")
    register(registry, "v2", bias=-1.0)
    registry.shadow("fraud", "v2", rate=0.5, actor="retrain")
    registry.record_evidence("fraud", "v2", evidence(challenger=0.8123, production=0.7901))
    register(registry, "v3", bias=-1.5)
    registry.shadow("fraud", "v3", rate=0.2, actor="retrain")
    registry.record_evidence("fraud", "v3", evidence(challenger=0.7, production=0.79))
    # Free text that tries to pass for another audit entry is shown with its newline escaped.
    registry.note("fraud", "v3", "fine\n2026-11-27 · ana · promote", actor="eve\u202eana")
    register(registry, "v4", bias=-1.2)

    with serving(create_app(make_settings(), registry)) as client:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # The policy must not block the page's own script, style or API calls.
        page.on(
            "console",
            lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
        )
        try:
            drive(page, client, registry)
        finally:
            page.close()
    assert errors == []


def drive(page: Page, client: Client, registry: ModelRegistry) -> None:
    message = page.locator("#message")
    page.goto(f"{client.base_url}/review")
    expect(message).to_have_text("Enter the admin token to load the models.")
    page.click("#connect")
    expect(message).to_contain_text("No admin token: enter SHADOWLINE_ADMIN_TOKEN above (401).")

    page.fill("#token", "not-the-token")
    page.fill("#actor", "ana")
    page.click("#connect")
    expect(message).to_contain_text("Wrong admin token: the scorer refused it (403).")
    expect(page.locator("#deployment")).to_be_hidden()

    page.fill("#token", ADMIN_TOKEN)
    page.click("#connect")
    expect(message).to_have_text("Loaded.")
    expect(page.locator("#production")).to_have_text("v1")
    expect(page.locator("#shadows")).to_contain_text("v2 at rate 0.5")
    v2, v3 = page.locator('[data-version="v2"]'), page.locator('[data-version="v3"]')
    expect(v2.locator(".state")).to_have_text("shadow")
    for shown in ("0.8123", "0.7901", "-0.0222", "5000", "300", "2026-11-01T00:00:00Z"):
        expect(v2.locator(".evidence")).to_contain_text(shown)
    expect(v2.locator(".policy")).to_have_text("Approval policy is satisfied.")
    note = page.locator('[data-version="v3"] .audit li').first
    expect(note).to_contain_text("eve\\u202eana · note")
    expect(note).to_contain_text("reason: fine\\n2026-11-27 · ana · promote")

    # Shadow a registered version at a rate, then take it out again.
    v4 = page.locator('[data-version="v4"]')
    expect(v4.locator(".policy")).to_contain_text("rule evidence_required: ")
    v4.locator(".rate").fill("0.3")
    v4.locator("button[data-action=shadow]").click()
    expect(message).to_have_text("fraud:v4 is in shadow at rate 0.3")
    expect(page.locator("#shadows")).to_contain_text("v4 at rate 0.3")
    assert registry.deployment("fraud").shadows["v4"] == 0.3
    v4.locator("button[data-action=unshadow]").click()
    expect(message).to_have_text("fraud:v4 left shadow")
    assert registry.state("fraud", "v4") is State.REGISTERED

    # A challenger worse than production: the page names the rule the API refused it for.
    v3.locator("button[data-action=approve]").click()
    expect(message).to_have_text("Approving needs a written reason.")
    v3.locator(".reason").fill("looks fine")
    v3.locator("button[data-action=approve]").click()
    expect(message).to_contain_text("Refused (409): cannot approve model fraud:v3")
    expect(page.locator("#problems")).to_have_text(
        "rule max_regression: fraud_caught_at_block_rate is 0.7000 against production's "
        "0.7900, a regression of 0.0900 > 0.0100 allowed"
    )
    assert registry.state("fraud", "v3") is State.SHADOW

    reason = "<b>beats v1</b> on 5000 shadow records"
    v2.locator(".reason").fill(reason)
    v2.locator("button[data-action=approve]").click()
    expect(message).to_have_text("fraud:v2 is approved")
    assert registry.state("fraud", "v2") is State.APPROVED
    entry = registry.audit("fraud")[-1]
    assert (entry.action, entry.version, entry.actor, entry.reason) == (
        "approve", "v2", "ana", reason,
    )  # fmt: skip
    # The reason is shown as text, its markup inert.
    expect(v2.locator(".audit li").first).to_contain_text(reason)
    expect(v2.locator(".audit b")).to_have_count(0)

    v2.locator("button[data-action=promote]").click()
    expect(message).to_have_text("fraud:v2 is production; scorers swap to it within seconds")
    assert wait_until(lambda: client.get("/readyz").json()["production"]["version"] == "v2")
    expect(page.locator("#production")).to_have_text("v2")
    expect(page.locator("#rollback-target")).to_have_text("v1")

    page.fill("#rollback-reason", "checking rollback")
    page.click("#rollback")
    expect(message).to_have_text("rolled back: fraud:v1 is production again")
    assert wait_until(lambda: client.get("/readyz").json()["production"]["version"] == "v1")
    assert registry.deployment("fraud").production == "v1"
    expect(page.locator("#production")).to_have_text("v1")
    expect(v2).to_have_count(0)  # retired: shown on request only
    page.check("#show-all")
    expect(v2.locator(".state")).to_have_text("retired")

    # Forcing past the policy needs a reason too, and is recorded as forced.
    v3.locator(".reason").fill("")
    v3.locator(".force").check()
    v3.locator("button[data-action=approve]").click()
    expect(message).to_have_text("Forcing an approval needs a written reason.")
    v3.locator(".reason").fill("fraud pattern shift: accept the lower metric this week")
    v3.locator("button[data-action=approve]").click()
    expect(message).to_have_text("fraud:v3 is approved (forced)")
    assert registry.state("fraud", "v3") is State.APPROVED
    assert registry.audit("fraud")[-1].detail.startswith("forced past policy: rule max_regression")
