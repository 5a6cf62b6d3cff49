"""Scoring input is bounded in work, not only bytes: body per transaction, unknown fields,
string lengths; each refused with 413 or 422 naming the limit, on both request paths.

Reproduces the defect where an 800 KB body with 100,000 unknown fields was scored (200).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from httpx import Client

from registry import ModelRegistry
from service.app import create_app
from service.errors import InvalidRequest
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
    settings = make_settings(
        max_transaction_bytes=2048,
        max_extra_fields=3,
        max_string_chars=64,
        max_batch=8,
        fast_path=request.param,
    )
    make_production(registry, "v1")
    with serving(create_app(settings, registry)) as test_client:
        assert wait_until(lambda: test_client.get("/readyz").status_code == 200)
        yield test_client


def score(client: Client, features: dict[str, Any], **top: Any) -> tuple[int, Any]:
    body = {"transaction_id": "t-1", "features": features, **top}
    response = client.post("/v1/score", content=orjson.dumps(body))
    return response.status_code, response.json()


def test_the_800kb_body_with_100k_unknown_fields_is_refused_unread(client: Client) -> None:
    features = {**ROW, **{f"k{i}": 1 for i in range(100_000)}}
    body = orjson.dumps({"transaction_id": "t-1", "features": features})
    response = client.post("/v1/score", content=body)
    assert response.status_code == 413
    assert response.json()["detail"] == (
        f"a request body of {len(body)} bytes exceeds the limit of 2048 bytes"
    )


def test_fields_beyond_the_models_are_capped(client: Client) -> None:
    full = {**ROW, "device_age_days": 3.0}  # all 6 of the model's fields
    assert score(client, {**full, "a": 1, "b": "x", "c": None})[0] == 200  # 9: at the cap
    status, body = score(client, {**full, "a": 1, "b": "x", "c": None, "d": True})
    assert status == 422
    assert body["errors"] == [
        "features: 10 fields; at most 9 are accepted (the model's 6 and 3 others)"
    ]
    # -10**40 as a JSON integer: too wide for 64 bits, read as a float.
    wide = b'{"transaction_id": "t", "features": {"big": 1e39, "small": -1' + b"0" * 40 + b", "
    response = client.post("/v1/score", content=wide + orjson.dumps(ROW)[1:] + b"}")
    status, body = response.status_code, response.json()
    assert status == 422
    assert body["errors"] == [
        "big: must be within ±3.402823e+38, the float32 range (got 1e+39)",
        "small: must be within ±3.402823e+38, the float32 range (got -1e+40)",
    ]


def test_strings_are_capped(client: Client) -> None:
    assert score(client, {**ROW, "note": "x" * 64})[0] == 200
    status, body = score(client, {**ROW, "note": "x" * 65, "k" * 70: 1})
    assert status == 422
    assert body["errors"] == [
        "note: must be at most 64 characters (got 65)",
        "k" * 40 + "...: a field name must be at most 64 characters (got 70)",
    ]
    status, body = score(client, {**ROW, "country": "U" * 100})  # a model field too
    assert status == 422
    assert "country: must be at most 64 characters (got 100)" in body["errors"]


def test_fields_beside_transaction_id_and_features_are_refused(client: Client) -> None:
    status, body = score(client, ROW, junk=[1, 2, 3])
    assert (status, body["errors"]) == (422, ["junk: is not a field of a transaction"])
    response = client.post(
        "/v1/score/batch",
        json={"transactions": [{"transaction_id": "t", "features": ROW}], "more": 1},
    )
    assert response.status_code == 422
    assert response.json()["errors"] == ["more: is not a field of a batch"]


def test_the_batch_limit_scales_with_its_length(client: Client) -> None:
    full = {"transaction_id": "t", "features": {**ROW, **{f"n{i}": "x" * 64 for i in range(3)}}}
    six = orjson.dumps({"transactions": [full] * 6})
    assert 2048 < len(six) < 6 * 2048  # more than one transaction's limit, within six
    assert client.post("/v1/score/batch", content=six).status_code == 200
    lean = {"transaction_id": "t", "features": ROW}
    stuffed = orjson.dumps({"transactions": [lean], "pad": "z" * 3000})
    response = client.post("/v1/score/batch", content=stuffed)
    assert response.status_code == 413
    assert response.json()["detail"] == (
        f"a batch of 1 transactions in {len(stuffed)} bytes exceeds the limit of 2048 bytes "
        "per transaction"
    )
    over = orjson.dumps({"transactions": [full] * 9})  # beyond max_batch x 2048 bytes
    response = client.post("/v1/score/batch", content=over + b" " * 16384)
    assert response.status_code == 413
    assert response.json()["detail"].endswith("exceeds the limit of 16384 bytes")


def test_a_422_lists_at_most_50_problems() -> None:
    refused = InvalidRequest([f"f{i}: bad" for i in range(120)])
    assert len(refused.problems) == 51
    assert refused.problems[-1] == "... and 70 more problems"
