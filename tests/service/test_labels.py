"""``POST /v1/labels`` against a real scorer, Redis and broker: token first, every bad label
named, nothing of a refused batch written, a retry never written twice."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
from httpx import Client
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from registry import ModelRegistry, SettingsError, load_settings
from registry.constants import label_seen_key
from registry.records import LabelRecord, decode_label, utc_text
from service.app import create_app
from service.settings import ServiceSettings
from shadowline.stack import free_port
from tests.service.helpers import ADMIN_TOKEN
from tests.service.kafka_helpers import read_topic
from tests.service.server import serving

LABELS_TOKEN = "test-labels-token"
LABELS = {"Authorization": f"Bearer {LABELS_TOKEN}"}
NOV_20 = 1795168800.0  # 2026-11-20T10:00:00Z


def label(
    tid: str, is_fraud: bool = True, at: float | str = NOV_20, source: str = "chargeback"
) -> dict[str, Any]:
    return {"transaction_id": tid, "is_fraud": is_fraud, "label_time": at, "source": source}


@pytest.fixture
def labels_topic(make_topic: Callable[..., str]) -> str:
    return make_topic("labels")


@pytest.fixture
def intake(
    registry: ModelRegistry, make_settings: Callable[..., ServiceSettings], labels_topic: str
) -> Iterator[Client]:
    settings = make_settings(
        labels_token=LABELS_TOKEN,
        labels_topic=labels_topic,
        labels_max_batch=5,
        max_body_bytes=4096,
        labels_ack_timeout_s=2.0,
    )
    with serving(create_app(settings, registry)) as client:
        client.headers.update(LABELS)
        yield client


def on_topic(bootstrap: str, topic: str, sentinel: str) -> list[tuple[str, LabelRecord]]:
    """Everything on the labels topic up to the label of ``sentinel`` (posted last: the topic
    has one partition, so whatever a request before it wrote is read first)."""
    read = read_topic(
        bootstrap,
        topic,
        lambda m: (m.key.decode(), decode_label(m.value)),
        until=lambda got: any(key == sentinel for key, _ in got),
    )
    assert read
    assert read[-1][0] == sentinel
    return read[:-1]


def test_the_token_is_checked_before_the_body(intake: Client) -> None:
    oversized = b"x" * 10_000  # over the 4096-byte limit, and not JSON either
    no_token = intake.post("/v1/labels", content=oversized, headers={"Authorization": ""})
    assert no_token.status_code == 401, no_token.text
    assert no_token.headers["www-authenticate"] == "Bearer"
    assert no_token.json()["detail"] == (
        "POST /v1/labels needs 'Authorization: Bearer <SHADOWLINE_LABELS_TOKEN>'"
    )
    admin = intake.post(
        "/v1/labels", content=oversized, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert admin.status_code == 403
    assert admin.json()["detail"] == "the bearer token is not the labels token"
    assert intake.post("/v1/labels", content=oversized).status_code == 413
    # Nor does the labels token open the admin API.
    assert intake.get("/admin/models").status_code == 403


def test_labels_are_written_once_keyed_by_transaction(
    intake: Client, kafka_bootstrap: str, labels_topic: str, redis_client: redis.Redis
) -> None:
    batch = [label("t-1"), label("t-2", False, source="review"), label("t-3", at=NOV_20 + 0.5)]
    first = intake.post("/v1/labels", json={"labels": batch})
    assert first.status_code == 200
    assert first.json() == {
        "received": 3,
        "written": 3,
        "duplicates": 0,
        "message": "3 label(s) written, 0 already taken",
    }
    retry = intake.post("/v1/labels", json={"labels": batch})
    assert retry.status_code == 200
    assert (retry.json()["written"], retry.json()["duplicates"]) == (0, 3)
    # The same label with its time as ISO 8601, a new one, and a repeat within the batch.
    iso = label("t-1", at="2026-11-20T10:00:00Z")
    mixed = intake.post("/v1/labels", json={"labels": [iso, label("t-4"), label("t-4")]})
    assert (mixed.json()["written"], mixed.json()["duplicates"]) == (1, 2)
    intake.post("/v1/labels", json={"labels": [label("end")]})

    written = on_topic(kafka_bootstrap, labels_topic, "end")
    assert [key for key, _ in written] == ["t-1", "t-2", "t-3", "t-4"]
    assert written[1][1] == LabelRecord(
        transaction_id="t-2", is_fraud=False, label_time=NOV_20, source="review"
    )
    metrics = intake.get("/metrics").text
    assert 'shadowline_labels_total{outcome="written"} 5.0' in metrics
    assert 'shadowline_labels_total{outcome="duplicate"} 5.0' in metrics
    # Remembered for the dedupe window (3 days by default), not for ever.
    ttl = redis_client.ttl(label_seen_key("t-1", NOV_20))
    assert 3 * 86400 - 60 < ttl <= 3 * 86400


def test_every_bad_label_is_named_and_nothing_is_written(
    intake: Client, kafka_bootstrap: str, labels_topic: str
) -> None:
    now = time.time()
    batch: list[Any] = [
        label("ok-1"),
        {"transaction_id": "", "is_fraud": "maybe", "label_time": NOV_20, "source": "x"},
        label("future", at=now + 3600),
        {"transaction_id": "t", "is_fraud": True, "label_time": NOV_20, "amount": 5},
        "not a label",
    ]
    refused = intake.post("/v1/labels", json={"labels": batch})
    assert refused.status_code == 422
    errors = refused.json()["errors"]
    assert errors[:2] == [
        "labels[1]: transaction_id: String should have at least 1 character",
        "labels[1]: is_fraud: Input should be a valid boolean, unable to interpret input",
    ]
    assert re.fullmatch(
        rf"labels\[2\]: label_time: {utc_text(now + 3600)} is in the future "
        r"\(now \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ; clock skew allowed 300 s\)",
        errors[2],
    )
    assert errors[3:] == [
        "labels[3]: source: Field required",
        "labels[3]: amount: Extra inputs are not permitted",
        "labels[4]: must be a JSON object",
    ]
    # Within the clock skew a label "from the future" is taken (clocks differ a little).
    assert (
        intake.post("/v1/labels", json={"labels": [label("ok-2", at=now + 60)]}).json()["written"]
        == 1
    )
    clash = [label("c", True), label("c", False)]
    assert intake.post("/v1/labels", json={"labels": clash}).json()["errors"] == [
        "labels[1]: transaction c has another label at the same label_time in labels[0] "
        "(fraud from chargeback, here legitimate from chargeback)"
    ]
    for body, errors in [
        (b'{"labels": []}', ["labels: must be a non-empty array"]),
        (b'{"labels": [1], "extra": 1}', ["extra: unknown field (the body is {'labels': [...]})"]),
        (b"[]", ["body: must be a JSON object, not an array"]),
    ]:
        response = intake.post(
            "/v1/labels", content=body, headers={"content-type": "application/json"}
        )
        assert (response.status_code, response.json()["errors"]) == (422, errors)
    not_json = intake.post("/v1/labels", content=b"{not json")
    assert not_json.json()["errors"][0].startswith("body: invalid JSON (")
    too_many = intake.post("/v1/labels", json={"labels": [label(f"m{i}") for i in range(6)]})
    assert (too_many.status_code, too_many.json()["errors"]) == (
        422,
        ["labels: a batch of 6 labels exceeds the limit of 5"],
    )
    intake.post("/v1/labels", json={"labels": [label("end")]})
    assert [key for key, _ in on_topic(kafka_bootstrap, labels_topic, "end")] == ["ok-2"]


def test_a_clash_with_a_label_taken_or_being_written_is_409(
    intake: Client, kafka_bootstrap: str, labels_topic: str, redis_client: redis.Redis
) -> None:
    assert intake.post("/v1/labels", json={"labels": [label("t-1")]}).json()["written"] == 1
    changed = intake.post("/v1/labels", json={"labels": [label("new"), label("t-1", False)]})
    assert changed.status_code == 409
    assert changed.json() == {
        "detail": "1 label(s) clash with labels received before; nothing of this batch was written",
        "errors": [
            "labels[1]: transaction t-1 at label_time 2026-11-20T10:00:00Z was already taken "
            "as fraud from chargeback, here legitimate from chargeback: a correction needs a "
            "label of its own, with a later label_time"
        ],
    }
    # Another replica is writing t-2 right now (its claim in Redis).
    redis_client.set(label_seen_key("t-2", NOV_20), "pending:fraud from chargeback", px=60_000)
    busy = intake.post("/v1/labels", json={"labels": [label("new"), label("t-2")]})
    assert busy.status_code == 409
    assert busy.json()["errors"] == [
        "labels[1]: transaction t-2 at label_time 2026-11-20T10:00:00Z is being written by "
        "another request now: send it again in a moment"
    ]
    # The refused batches released their claim on "new": it is written when sent again.
    corrected = [label("new"), label("t-1", False, at=NOV_20 + 86400)]
    assert intake.post("/v1/labels", json={"labels": corrected}).json()["written"] == 2
    intake.post("/v1/labels", json={"labels": [label("end")]})
    assert [key for key, _ in on_topic(kafka_bootstrap, labels_topic, "end")] == [
        "t-1",
        "new",
        "t-1",
    ]


def test_concurrent_deliveries_of_one_batch_write_it_once(
    intake: Client, kafka_bootstrap: str, labels_topic: str
) -> None:
    batch = {"labels": [label(f"t-{i}") for i in range(5)]}
    answers: list[httpx.Response] = []

    def deliver() -> None:
        with httpx.Client(base_url=intake.base_url, headers=LABELS, timeout=10) as client:
            answers.append(client.post("/v1/labels", json=batch))

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {answer.status_code for answer in answers} <= {200, 409}
    # The webhook sender retries whatever was refused until it is taken.
    retried = intake.post("/v1/labels", json=batch)
    assert retried.status_code == 200
    written = sum(a.json()["written"] for a in [*answers, retried] if a.status_code == 200)
    assert written == 5
    intake.post("/v1/labels", json={"labels": [label("end")]})
    keys = [key for key, _ in on_topic(kafka_bootstrap, labels_topic, "end")]
    assert sorted(keys) == [f"t-{i}" for i in range(5)]


def test_no_topic_or_no_redis_is_503_and_a_retry_is_written(
    registry: ModelRegistry, make_settings: Callable[..., ServiceSettings], kafka_bootstrap: str
) -> None:
    missing = f"labels-missing-{free_port()}"
    settings = make_settings(
        labels_token=LABELS_TOKEN, labels_topic=missing, labels_ack_timeout_s=1.0
    )
    batch = {"labels": [label("t-1")]}
    with serving(create_app(settings, registry)) as client:
        client.headers.update(LABELS)
        refused = client.post("/v1/labels", json=batch)
        assert refused.status_code == 503
        assert refused.json()["detail"] == (
            f"labels cannot be taken now: the labels topic {missing} does not exist on Kafka "
            f"at {kafka_bootstrap} (shadowline stack up creates it)"
        )
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=5000)
        try:
            admin.create_topics([NewTopic(missing, num_partitions=1, replication_factor=1)])
            # Its claim was released: the retry is written, not taken for a duplicate.
            assert client.post("/v1/labels", json=batch).json()["written"] == 1
        finally:
            admin.delete_topics([missing])
            admin.close()

    no_redis = make_settings(
        labels_token=LABELS_TOKEN, redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    with serving(create_app(no_redis, registry)) as client:
        down = client.post("/v1/labels", json=batch, headers=LABELS)
    assert down.status_code == 503
    assert down.json()["detail"].startswith(
        "labels cannot be taken now: Redis (the dedupe window) failed: Error 111 connecting"
    )
    broker = f"127.0.0.1:{free_port()}"
    no_broker = make_settings(labels_token=LABELS_TOKEN, kafka_bootstrap=broker)
    with serving(create_app(no_broker, registry)) as client:
        down = client.post("/v1/labels", json=batch, headers=LABELS)
        assert down.json()["detail"] == (
            f"labels cannot be taken now: no Kafka broker answers at {broker}"
        )
        # Its claim was released: the retry meets the missing broker again, not a claim (409).
        assert client.post("/v1/labels", json=batch, headers=LABELS).status_code == 503


def test_intake_is_off_without_a_token(
    registry: ModelRegistry, make_settings: Callable[..., ServiceSettings]
) -> None:
    with serving(create_app(make_settings(), registry)) as client:
        off = client.post("/v1/labels", json={"labels": [label("t")]}, headers=LABELS)
        schema = client.get("/openapi.json").json()
    assert off.status_code == 404
    assert off.json()["detail"] == (
        "this scorer takes no labels: POST /v1/labels is off until SHADOWLINE_LABELS_TOKEN is set"
    )
    post = schema["paths"]["/v1/labels"]["post"]
    body = post["requestBody"]["content"]["application/json"]
    assert body["example"]["labels"][0]["transaction_id"] == "t-1001"
    items = body["schema"]["properties"]["labels"]["items"]
    assert items["required"] == ["transaction_id", "is_fraud", "label_time", "source"]
    assert body["schema"]["properties"]["labels"]["maxItems"] == 1000
    assert {"200", "401", "403", "404", "409", "413", "422", "503"} <= set(post["responses"])
    assert post["security"] == [{"LabelsToken": []}]
    assert "LabelsToken" in schema["components"]["securitySchemes"]


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        (ADMIN_TOKEN, "SHADOWLINE_LABELS_TOKEN must differ from SHADOWLINE_ADMIN_TOKEN"),
        ("short", "SHADOWLINE_LABELS_TOKEN must be at least 8 characters"),
    ],
)
def test_the_labels_token_is_its_own(token: str, problem: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(ServiceSettings, admin_token=ADMIN_TOKEN, labels_token=token)
    assert problem in str(info.value)
    assert token not in str(info.value).replace(problem, "")
