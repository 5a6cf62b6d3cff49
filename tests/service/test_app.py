"""The app served by uvicorn: scoring, every kind of bad input, health, metrics, OpenAPI."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from httpx import Client

from registry import ModelRegistry
from service.app import create_app
from service.settings import ServiceSettings
from tests.factories import random_rows
from tests.service.helpers import make_production, wait_until
from tests.service.server import serving

ROW = random_rows(n=1)[0]


@pytest.fixture(params=[True, False], ids=["fast-path", "through-fastapi"])
def client(
    registry: ModelRegistry,
    make_settings: Callable[..., ServiceSettings],
    request: pytest.FixtureRequest,
) -> Iterator[Client]:
    """The scoring routes answered by the fast lane and through FastAPI: same responses."""
    settings = make_settings(max_transaction_bytes=2048, max_batch=2, fast_path=request.param)
    app = create_app(settings, registry)
    with serving(app) as test_client:
        yield test_client


def ready(client: Client) -> bool:
    return client.get("/readyz").status_code == 200


def test_no_production_model_means_503_and_not_ready(client: Client) -> None:
    response = client.post("/v1/score", json={"transaction_id": "t", "features": ROW})
    assert response.status_code == 503
    assert response.json()["detail"].startswith("no production model is loaded for 'fraud'")
    readiness = client.get("/readyz")
    assert readiness.status_code == 503
    assert readiness.json()["production"] is None
    assert readiness.json()["registry"] == {"reachable": True, "error": None}
    assert client.get("/healthz").json() == {"status": "alive"}


def test_scores_once_a_production_model_is_promoted(
    client: Client, registry: ModelRegistry
) -> None:
    make_production(registry, "v1")
    assert wait_until(lambda: ready(client))
    response = client.post("/v1/score", json={"transaction_id": "t-1", "features": ROW})
    assert response.status_code == 200
    body = response.json()
    assert (body["transaction_id"], body["model_name"], body["model_version"]) == (
        "t-1",
        "fraud",
        "v1",
    )
    assert body["decision"] in {"allow", "review", "block"}
    readiness = client.get("/readyz").json()
    assert readiness["production"]["version"] == "v1"
    assert readiness["production"]["sha256"] == registry.manifest("fraud", "v1").sha256
    metrics = client.get("/metrics").text
    assert 'shadowline_request_duration_seconds_count{route="/v1/score",status="200"} 1.0' in (
        metrics
    )
    assert 'shadowline_model_info{role="production",sha256=' in metrics


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (b"{", ["body: invalid JSON (unexpected end of data: line 1 column 2 (char 1))"]),
        (b"[]", ["body: must be a JSON object, not an array"]),
        (
            b'{"features": {}}',
            [
                "transaction_id: is required",
                "amount: is required",
                "card_age_days: is required",
                "is_foreign: is required",
                "country: is required",
            ],
        ),
        (
            orjson.dumps({"transaction_id": "t", "features": {**ROW, "amount": -5, "country": 3}}),
            ["amount: must be >= 0 (got -5)", "country: must be a string"],
        ),
    ],
)
def test_bad_input_is_422_naming_each_field(
    client: Client, registry: ModelRegistry, body: bytes, errors: list[str]
) -> None:
    make_production(registry, "v1")
    assert wait_until(lambda: ready(client))
    response = client.post("/v1/score", content=body)
    assert response.status_code == 422
    assert response.json() == {"detail": "invalid request", "errors": errors}


def test_oversized_bodies_are_413_and_long_batches_422(
    client: Client, registry: ModelRegistry
) -> None:
    make_production(registry, "v1")
    assert wait_until(lambda: ready(client))
    big = orjson.dumps({"transaction_id": "t", "features": {**ROW, "note": "x" * 3000}})
    declared = client.post("/v1/score", content=big)
    assert declared.status_code == 413
    assert declared.json()["detail"] == (
        f"a request body of {len(big)} bytes exceeds the limit of 2048 bytes"
    )
    assert declared.headers["connection"] == "close"  # the unread rest is not drained
    streamed = client.post("/v1/score", content=iter([big[:1500], big[1500:]]))
    assert streamed.status_code == 413
    assert streamed.json()["detail"] == "the request body exceeds the limit of 2048 bytes"
    item = {"transaction_id": "t", "features": ROW}
    batch = client.post("/v1/score/batch", json={"transactions": [item, item, item]})
    assert batch.status_code == 422
    assert batch.json()["errors"] == [
        "transactions: a batch of 3 transactions exceeds the limit of 2"
    ]
    ok = client.post("/v1/score/batch", json={"transactions": [item, item]})
    assert ok.status_code == 200
    assert len(ok.json()["results"]) == 2


def test_openapi_documents_scoring_and_admin(client: Client) -> None:
    schema = client.get("/openapi.json").json()
    score = schema["paths"]["/v1/score"]["post"]
    body = score["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["transaction_id", "features"]
    assert {"200", "413", "422", "503"} <= set(score["responses"])
    batch = schema["paths"]["/v1/score/batch"]["post"]["requestBody"]
    assert (
        batch["content"]["application/json"]["schema"]["properties"]["transactions"]["maxItems"]
        == 2
    )
    assert "/admin/models/{version}/promote" in schema["paths"]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    # 200 bodies are their real models; errors are the one {"detail", "errors"} shape.
    ok = score["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/ScoreResponse"}
    readyz = schema["paths"]["/readyz"]["get"]["responses"]
    assert readyz["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Readiness")
    assert readyz["503"]["content"]["application/json"]["schema"]["$ref"].endswith("/Readiness")
    promote = schema["paths"]["/admin/models/{version}/promote"]["post"]["responses"]
    assert set(promote) == {"200", "400", "401", "403", "404", "409", "413", "422", "503"}
    assert promote["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_the_scoring_body_follows_the_production_model(
    client: Client, registry: ModelRegistry
) -> None:
    def features() -> dict[str, Any]:
        schema = client.get("/openapi.json").json()
        body = schema["paths"]["/v1/score"]["post"]["requestBody"]["content"]
        found: dict[str, Any] = body["application/json"]["schema"]["properties"]["features"]
        return found

    assert features()["properties"] == {}  # no model yet: any scalars
    make_production(registry, "v1")
    assert wait_until(lambda: ready(client))
    shown = features()
    assert shown["required"] == ["amount", "card_age_days", "is_foreign", "country"]
    assert shown["properties"]["amount"] == {"type": "number", "minimum": 0, "maximum": 1e6}
    assert shown["properties"]["country"] == {
        "type": "string",
        "maxLength": 1024,
        "enum": ["US", "GB", "DE", "BR"],
    }
    assert shown["maxProperties"] == 6 + 256


def test_every_answer_says_nosniff(client: Client, registry: ModelRegistry) -> None:
    make_production(registry, "v1")
    assert wait_until(lambda: ready(client))
    answers = [
        client.post("/v1/score", json={"transaction_id": "t", "features": ROW}),
        client.post("/v1/score", content=b"{"),
        client.get("/readyz"),
        client.get("/healthz"),
        client.get("/admin/models"),
        client.get("/openapi.json"),
        client.get("/no/such/path"),
    ]
    assert [a.headers.get("x-content-type-options") for a in answers] == ["nosniff"] * 7
    assert client.get("/review").headers.get_list("x-content-type-options") == ["nosniff"]
