"""The admin API: token check, every lifecycle move through the registry, errors mapped."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from httpx import Client

from registry import ModelRegistry, State
from service.app import create_app
from service.settings import ServiceSettings
from tests.service.conftest import ADMIN, make_production, register, wait_until
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
    listing = admin.get("/admin/models").json()
    assert [(m["version"], m["state"]) for m in listing["models"]] == [
        ("v1", "production"), ("v2", "shadow"),
    ]  # fmt: skip
    assert wait_until(lambda: admin.get("/admin/models").json()["loaded"]["shadows"] == {"v2": 0.5})

    refused = admin.post("/admin/models/v2/approve", json={"actor": "ana", "reason": "looks ok"})
    assert refused.status_code == 409
    assert refused.json()["detail"].startswith("cannot approve model fraud:v2: ")
    assert refused.json()["errors"]  # each broken policy rule
    forced = {"actor": "ana", "reason": "incident fix", "force": True}
    assert admin.post("/admin/models/v2/approve", json=forced).status_code == 200
    promoted = admin.post("/admin/models/v2/promote", json={"actor": "ana"})
    assert promoted.json()["production"] == "v2"
    assert promoted.json()["previous_production"] == "v1"
    rolled = admin.post("/admin/rollback", json={"actor": "ana", "reason": "bad"})
    assert rolled.json()["production"] == "v1"
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
    assert bad_rate.json()["detail"][0]["loc"] == ["body", "rate"]
    no_actor = admin.post("/admin/models/v1/unshadow", json={})
    assert no_actor.status_code == 422
    no_history = admin.post("/admin/rollback", json={"actor": "ana"})
    assert no_history.status_code == 409
    assert no_history.json()["detail"] == (
        "cannot roll back model fraud: it has no production version"
    )
