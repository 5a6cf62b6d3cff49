"""``/docs`` is a reference on its own: every route and model of the OpenAPI document has a
description and an example, every example is valid against its schema, and the scoring
examples are transactions the model served really scores as documented.

The scorer serves a model over the inputs of the pipeline's models (what ``make demo``
promotes), so the examples are checked against the demo's model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from registry import ModelRegistry
from retrain.schema import MODEL_SCHEMA
from service.app import create_app
from service.settings import ServiceSettings
from tests.lifecycle import NAME, production, register
from tests.service.server import serving

ADMIN_TOKEN = "openapi-admin-token"
LABELS_TOKEN = "openapi-labels-token"
Document = dict[str, Any]


def _validator(document: Document, schema: dict[str, Any]) -> Draft202012Validator:
    """A validator of ``schema`` whose ``#/components/...`` references read ``document``."""
    resource = DRAFT202012.create_resource(document)
    return Draft202012Validator(schema, registry=Registry().with_resource("urn:openapi", resource))


def _ref(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with a ``#/components`` reference pointed at the registered document."""
    if "$ref" in schema:
        return {"$ref": "urn:openapi" + schema["$ref"]}
    return schema


def _component(document: Document, schema: dict[str, Any]) -> dict[str, Any]:
    name = schema["$ref"].rsplit("/", 1)[1] if "$ref" in schema else None
    return document["components"]["schemas"][name] if name else schema


def _examples(document: Document, media: dict[str, Any]) -> list[Any]:
    """The examples a media type shows: its own, else its schema's (a component's)."""
    if "example" in media:
        return [media["example"]]
    return list(_component(document, media.get("schema", {})).get("examples", []))


@pytest.fixture
def document_and_client(
    registry: ModelRegistry,
    make_settings: Callable[..., ServiceSettings],
    make_topic: Callable[..., str],
) -> Any:
    production(registry, "v1", schema=MODEL_SCHEMA)
    register(registry, "v2", bias=-1.0, schema=MODEL_SCHEMA)
    registry.shadow(NAME, "v2", rate=1.0, actor="test")
    settings = make_settings(
        admin_token=ADMIN_TOKEN, labels_token=LABELS_TOKEN, labels_topic=make_topic("labels")
    )
    with serving(create_app(settings, registry)) as client:
        yield client.get("/openapi.json").json(), client


def test_every_route_and_model_has_a_description_and_valid_examples(
    document_and_client: tuple[Document, httpx.Client],
) -> None:
    document, _ = document_and_client
    assert "SHADOWLINE_ADMIN_TOKEN" in document["info"]["description"]
    assert {tag["name"] for tag in document["tags"]} == {
        tag for path in document["paths"].values() for op in path.values() for tag in op["tags"]
    }
    for name, schema in document["components"]["schemas"].items():
        assert schema.get("description"), name
        [example] = schema["examples"]
        _validator(document, _ref({"$ref": f"#/components/schemas/{name}"})).validate(example)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            assert operation.get("summary"), where
            assert operation.get("description"), where
            if "requestBody" in operation:
                [media] = operation["requestBody"]["content"].values()
                [example] = _examples(document, media)
                _validator(document, _ref(media["schema"])).validate(example)
            ok = {k: v for k, v in operation["responses"].items() if k.startswith("2")}
            assert ok, where
            for response in ok.values():
                for media in response["content"].values():
                    [example] = _examples(document, media)
                    _validator(document, _ref(media.get("schema", {}))).validate(example)
            for parameter in operation.get("parameters", []):
                assert parameter.get("description"), where
                assert parameter["schema"].get("examples"), where


def test_the_scoring_examples_are_scored_as_documented_by_the_model_served(
    document_and_client: tuple[Document, httpx.Client],
) -> None:
    document, client = document_and_client
    for path in ("/v1/score", "/v1/score/batch"):
        operation = document["paths"][path]["post"]
        request = operation["requestBody"]["content"]["application/json"]["example"]
        answer = operation["responses"]["200"]["content"]["application/json"]["example"]
        assert answer["model_version"] == "v1"
        served = client.post(path, json=request)
        assert served.status_code == 200, served.text
        body = served.json()
        got = body.get("results", [body])
        documented = answer.get("results", [answer])
        assert [r["transaction_id"] for r in got] == [r["transaction_id"] for r in documented]
        for real, shown in zip(got, documented, strict=True):
            assert real["decision"] == shown["decision"]
            assert real["score"] == pytest.approx(shown["score"], abs=1e-4)
    labels = document["paths"]["/v1/labels"]["post"]["requestBody"]["content"]
    taken = client.post(
        "/v1/labels",
        json=labels["application/json"]["example"],
        headers={"Authorization": f"Bearer {LABELS_TOKEN}"},
    )
    assert taken.status_code == 200, taken.text
    assert taken.json()["written"] == 2
