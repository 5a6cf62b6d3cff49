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
from tests.factories import make_evidence
from tests.service.helpers import (
    ADMIN_TOKEN,
    CHROMIUM,
    CHROMIUM_ARGS,
    make_production,
    register,
    wait_until,
)
from tests.service.server import serving


def evidence(challenger: float, production: float) -> ShadowEvidence:
    difference = challenger - production
    return make_evidence(
        challenger=challenger,
        production_value=production,
        labeled_records=300,
        low=difference - 0.01,
        high=difference + 0.01,
        window_start=datetime(2026, 11, 1, tzinfo=UTC),
        window_end=datetime(2026, 11, 15, tzinfo=UTC),
    )


def test_the_page_is_static_with_a_content_security_policy(
    registry: ModelRegistry, make_settings: Callable[..., ServiceSettings]
) -> None:
    make_production(registry, "prod-2026-11-20")
    sha = registry.manifest("fraud", "prod-2026-11-20").sha256
    assert sha is not None
    with serving(create_app(make_settings(), registry)) as client:
        page = client.get("/review")
        script = client.get("/review/review.js")
        renderer = client.get("/review/evidence.js")
        style = client.get("/review/review.css")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY
    assert page.headers["x-content-type-options"] == "nosniff"
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert renderer.headers["content-type"] == "text/javascript; charset=utf-8"
    assert renderer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    assert '<script src="/review/review.js" defer></script>' in page.text
    for body in (page.text, script.text, renderer.text, style.text):
        assert "prod-2026-11-20" not in body
        assert sha not in body
        assert ADMIN_TOKEN not in body
    # Values reach the page as text only.
    for code in (script.text, renderer.text):
        assert "innerHTML" not in code
        assert "insertAdjacentHTML" not in code


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
    for shown in (
        "0.812",
        "0.790",
        "+0.022 [+0.012, +0.032]",
        "5,000 compared",
        "300 labeled",
        "2026-11-01T00:00:00Z",
    ):
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
        "rule non_inferiority: fraud_caught_at_block_rate differs by -0.0900 (challenger "
        "minus production); its lower bound at 97.50% (1 look(s)) is -0.1000, not above -0.0200"
    )
    assert registry.state("fraud", "v3") is State.SHADOW

    reason = "<b>beats v1</b> on 5000 shadow records"
    v2.locator(".reason").fill(reason)
    v2.locator("button[data-action=approve]").click()
    expect(message).to_have_text("fraud:v2 is approved")
    assert registry.state("fraud", "v2") is State.APPROVED
    entry = registry.audit("fraud")[-1]
    assert (entry.action, entry.version, entry.actor, entry.reason) == (
        "approve",
        "v2",
        "ana",
        reason,
    )
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
    assert registry.audit("fraud")[-1].detail.startswith("forced past policy: rule non_inferiority")


def test_the_numbers_behind_the_verdict_then_approval_without_force(
    browser: Browser, registry: ModelRegistry, make_settings: Callable[..., ServiceSettings]
) -> None:
    make_production(registry, "v1")
    register(registry, "v2", bias=-1.0)
    registry.shadow("fraud", "v2", rate=0.5, actor="retrain")
    replay = make_evidence(
        source="replay", compared=20_000, matured_frauds=300, report="runs/42/report.html"
    )
    registry.record_evidence("fraud", "v2", replay)

    with serving(create_app(make_settings(), registry)) as client:
        report = f"{client.base_url}/reports/v2.html"  # a link only: never fetched
        live = make_evidence(
            challenger=0.83,
            production_value=0.80,
            low=0.012,
            high=0.048,
            with_metrics=True,
            with_signals=True,
            control=0.004,
            report=report,
        )
        registry.record_evidence("fraud", "v2", live)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            page.goto(f"{client.base_url}/review")
            page.fill("#token", ADMIN_TOKEN)
            page.fill("#actor", "ana")
            page.click("#connect")
            expect(page.locator("#message")).to_have_text("Loaded.")
            v2 = page.locator('[data-version="v2"]')
            shown = v2.locator('.evidence-source[data-source="live"]')
            metrics = shown.locator("table.metrics")
            primary = metrics.locator("tr.primary")
            expect(primary).to_contain_text("fraud caught at production's block rate (judged)")
            expect(primary.locator("td")).to_have_text(
                [
                    "fraud caught at production's block rate (judged)",
                    "0.800 [0.770, 0.830]",
                    "0.830 [0.800, 0.860]",
                    "+0.030 [+0.012, +0.048]",
                    "120",
                    "2,500",
                ]
            )
            expect(metrics).to_contain_text("+0.013 [+0.004, +0.022]")  # AUC
            expect(metrics).to_contain_text("+3,190 [-1,250, +7,630]")  # money saved
            expect(shown.locator(".bound")).to_have_text(
                "Decision bound: the difference is at least +0.012 at 97.50% confidence after "
                "1 look(s); approval needs it above -0.020."
            )
            for text in (
                "120 (policy needs 50)",
                "14.0 days, from the delay by which 90% of fraud labels arrived",
                "93.0% (policy needs 80%)",
                "97.1%",  # decision agreement
                "0.031 / 0.045",  # PSI / KS
                "0.04% / 0.02% / 0.00% / 0.10%",  # error / timeout / busy / shed
                "1.2 / 2.9 / 4.4 ms",
                "37 · 5,120",  # allow -> block, with the money
            ):
                expect(shown).to_contain_text(text)
            control = shown.locator(".control")
            expect(control).to_contain_text("Control v1-control")
            expect(control).to_contain_text("control minus production+0.004 [-0.008, +0.016]")
            expect(control).to_contain_text("challenger minus control+0.026 [+0.011, +0.041]")
            expect(control.locator(".verdict")).to_have_text(
                "the challenger's difference is larger than retraining alone produces"
            )
            expect(shown.locator(".report a")).to_have_attribute("href", report)
            replayed = v2.locator('.evidence-source[data-source="replay"]')
            expect(replayed).to_contain_text("20,000 compared")
            expect(replayed.locator(".report")).to_have_text(
                "Full report: runs/42/report.html (on the analysis host)"
            )
            expect(v2.locator(".policy")).to_have_text("Approval policy is satisfied.")

            v2.locator(".reason").fill("beats v1 beyond the control's noise floor")
            v2.locator("button[data-action=approve]").click()  # no force
            expect(page.locator("#message")).to_have_text("fraud:v2 is approved")
        finally:
            page.close()
    assert errors == []
    assert registry.state("fraud", "v2") is State.APPROVED
    entry = registry.audit("fraud")[-1]
    assert (entry.action, entry.detail) == ("approve", "policy satisfied")
