"""The admin API: token check, every lifecycle move through the registry, errors mapped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from httpx import Client

from registry import ModelRegistry, State
from service.app import create_app
from service.settings import ServiceSettings
from tests.factories import make_evidence
from tests.service.helpers import ADMIN, make_production, register, wait_until
from tests.service.server import serving


@pytest.fixture
def admin(
    registry: ModelRegistry, make_settings: Callable[..., ServiceSettings]
) -> Iterator[Client]:
    with serving(create_app(make_settings(), registry)) as client:
        client.headers.update(ADMIN)
        yield client


def test_token_is_required_and_checked(admin: Client) -> None:
    no_token = admin.get("/admin/models", headers={"Authorization": ""})
    assert no_token.status_code == 401
    assert no_token.headers["www-authenticate"] == "Bearer"
    assert no_token.json()["detail"] == (
        "the admin API needs 'Authorization: Bearer <SHADOWLINE_ADMIN_TOKEN>'"
    )
    wrong = admin.get("/admin/models", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 403
    assert wrong.json()["detail"] == "the bearer token is not the admin token"
    assert admin.get("/admin/models").status_code == 200


def test_lifecycle_through_the_admin_api(admin: Client, registry: ModelRegistry) -> None:
    make_production(registry, "v1")
    register(registry, "v2", bias=-1.0)
    shadow = admin.post("/admin/models/v2/shadow", json={"actor": "ana", "rate": 0.5})
    assert shadow.status_code == 200
    assert shadow.json()["shadows"] == {"v2": 0.5}
    assert shadow.json()["message"] == "fraud:v2 is in shadow at rate 0.5"
    listing = admin.get("/admin/models").json()
    assert [(m["version"], m["state"]) for m in listing["models"]] == [
        ("v1", "production"),
        ("v2", "shadow"),
    ]
    assert wait_until(lambda: admin.get("/admin/models").json()["loaded"]["shadows"] == {"v2": 0.5})

    refused = admin.post("/admin/models/v2/approve", json={"actor": "ana", "reason": "looks ok"})
    assert refused.status_code == 409
    assert refused.json()["detail"].startswith("cannot approve model fraud:v2: ")
    assert refused.json()["errors"]  # each broken policy rule
    forced = {"actor": "ana", "reason": "incident fix", "force": True}
    approved = admin.post("/admin/models/v2/approve", json=forced)
    assert approved.status_code == 200
    assert approved.json()["message"] == "fraud:v2 is approved (forced)"
    promoted = admin.post("/admin/models/v2/promote", json={"actor": "ana"})
    assert promoted.json()["production"] == "v2"
    assert promoted.json()["previous_production"] == "v1"
    assert promoted.json()["message"] == (
        "fraud:v2 is production; scorers swap to it within seconds"
    )
    rolled = admin.post("/admin/rollback", json={"actor": "ana", "reason": "bad"})
    assert rolled.json()["production"] == "v1"
    assert rolled.json()["message"] == "rolled back: fraud:v1 is production again"
    assert registry.state("fraud", "v2") is State.RETIRED
    actions = [(e.actor, e.action) for e in registry.audit("fraud")]
    assert ("ana", "promote") in actions
    assert ("ana", "rollback") in actions


def test_registry_errors_are_mapped(admin: Client, registry: ModelRegistry) -> None:
    missing = admin.post("/admin/models/v9/promote", json={"actor": "ana"})
    assert missing.status_code == 404
    assert missing.json()["detail"] == "model fraud:v9 is not registered"
    register(registry, "v1")
    illegal = admin.post("/admin/models/v1/promote", json={"actor": "ana"})
    assert illegal.status_code == 409
    assert illegal.json()["detail"] == (
        "cannot promote model fraud:v1: it is in state registered; "
        "allowed moves: approve, reject, retire, shadow"
    )
    bad_rate = admin.post("/admin/models/v1/shadow", json={"actor": "ana", "rate": 1.5})
    assert bad_rate.status_code == 422
    assert bad_rate.json() == {
        "detail": "invalid request",
        "errors": ["rate: Input should be less than or equal to 1"],
    }
    no_actor = admin.post("/admin/models/v1/unshadow", json={})
    assert no_actor.status_code == 422
    assert no_actor.json()["errors"] == ["actor: Field required"]
    no_history = admin.post("/admin/rollback", json={"actor": "ana"})
    assert no_history.status_code == 409
    assert no_history.json()["detail"] == (
        "cannot roll back model fraud: it has no production version"
    )


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        # FastAPI's own handler echoed the input with json.dumps: NaN and 1e999 were a 500.
        (b'{"actor": "me", "rate": NaN}', ["rate: Input should be a finite number"]),
        (b'{"actor": "me", "rate": 1e999}', ["rate: Input should be a finite number"]),
        (b'{"rate": 0.5}', ["actor: Field required"]),
        (
            b'{"actor": 7, "rate": "often"}',
            [
                "actor: Input should be a valid string",
                "rate: Input should be a valid number, unable to parse string as a number",
            ],
        ),
        (b'{"actor":', ["body: invalid JSON (Expecting value)"]),
        (b"[]", ["body: Input should be a valid dictionary or object to extract fields from"]),
    ],
)
def test_invalid_admin_bodies_are_422_naming_each_field(
    admin: Client, body: bytes, errors: list[str]
) -> None:
    response = admin.post(
        "/admin/models/v1/shadow", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json() == {"detail": "invalid request", "errors": errors}
    assert "often" not in response.text  # the input is never echoed


def test_one_version_for_review(admin: Client, registry: ModelRegistry) -> None:
    make_production(registry, "v1")
    register(registry, "v2", bias=-1.0)
    registry.shadow("fraud", "v2", rate=0.25, actor="retrain", reason="weekly run")
    evidence = make_evidence(
        challenger=0.8123,
        production_value=0.7901,
        labeled_records=300,
        window_start=datetime(2026, 11, 1, tzinfo=UTC),
        window_end=datetime(2026, 11, 15, tzinfo=UTC),
        report="runs/42/report.html",
    )
    registry.record_evidence("fraud", "v2", evidence)

    detail = admin.get("/admin/models/v2").json()
    assert (detail["version"], detail["state"], detail["shadow_rate"]) == ("v2", "shadow", 0.25)
    shown = detail["evidence"]
    assert shown["production_version"] == "v1"
    assert (shown["shadow_records"], shown["labeled_records"]) == (5000, 300)
    assert (shown["challenger_value"], shown["production_value"]) == (0.8123, 0.7901)
    assert shown["regression"] == pytest.approx(-0.0222)
    assert shown["window_start"] == "2026-11-01T00:00:00Z"
    assert shown["report"] == "runs/42/report.html"
    assert shown["recorded_at"] is not None
    # Every number behind the verdict, as recorded.
    assert (shown["source"], shown["matured_frauds"], shown["looks"]) == ("live", 120, 1)
    assert shown["difference_ci"] == {"low": -0.005, "high": 0.025, "level": 0.95}
    assert (shown["decision_low"], shown["decision_level"]) == (-0.005, 0.975)
    assert shown["maturity"]["expected_share_matured"] == 0.93
    assert detail["replay_evidence"] is None
    assert (detail["policy"]["tolerance"], detail["policy"]["min_matured_frauds"]) == (0.02, 50)
    assert detail["policy_violations"] == []
    # Newest first, this version's entries only.
    assert [(e["action"], e["actor"]) for e in detail["audit"]] == [
        ("evidence", "shadow-analysis"),
        ("shadow", "retrain"),
        ("register", "test"),
    ]
    assert detail["audit"][1]["reason"] == "weekly run"
    assert detail["audit"][1]["from_state"] == "registered"
    assert detail["audit"][1]["to_state"] == "shadow"
    assert [e["action"] for e in admin.get("/admin/models/v2?audit=1").json()["audit"]] == [
        "evidence"
    ]
    assert admin.get("/admin/models/v2?audit=0").json()["audit"] == []

    left = admin.post("/admin/models/v2/unshadow", json={"actor": "ana"})
    assert left.json()["message"] == "fraud:v2 left shadow"
    assert left.json()["shadows"] == {}

    no_evidence = admin.get("/admin/models/v1").json()
    assert no_evidence["evidence"] is None
    assert no_evidence["policy_violations"][0].startswith("rule evidence_required: ")


def test_version_detail_errors(admin: Client, registry: ModelRegistry) -> None:
    register(registry, "v1")
    missing = admin.get("/admin/models/v9")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "model fraud:v9 is not registered"
    too_many = admin.get("/admin/models/v1?audit=101")
    assert too_many.status_code == 422
    assert too_many.json()["errors"] == ["query.audit: Input should be less than or equal to 100"]
    assert admin.get("/admin/models/v1", headers={"Authorization": ""}).status_code == 401
    paths = admin.get("/openapi.json").json()["paths"]
    assert "get" in paths["/admin/models/{version}"]
