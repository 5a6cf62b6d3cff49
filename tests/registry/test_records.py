"""Wire records: encode, decode, and refusals that name the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from registry.manifest import Decision
from registry.records import (
    LabelRecord,
    ProductionScore,
    ScoreRecord,
    ShadowScore,
    decode_label,
    decode_score,
    encode,
)


def test_score_record_round_trip() -> None:
    record = ScoreRecord(
        transaction_id="tx-1",
        request_id="r-1",
        scored_at=1_700_000_000.5,
        model_name="fraud",
        production=ProductionScore(
            version="v1", score=0.2, decision=Decision.ALLOW, latency_ms=0.1
        ),
        shadows=[
            ShadowScore(version="v2", score=0.9, decision=Decision.BLOCK, latency_ms=0.3),
            ShadowScore(version="v3", score=None, decision=None, latency_ms=None, error="timeout"),
        ],
        inputs={"amount": 10.0, "country": "US", "is_foreign": False},
    )
    assert decode_score(encode(record)) == record
    assert b'"schema_version":2' in encode(record)
    assert record.production.explored is False


def test_version_1_score_records_still_decode() -> None:
    # Written before exploration existed: no explored / exploration_share fields.
    old = (
        b'{"schema_version":1,"transaction_id":"tx-1","request_id":"r","scored_at":1.0,'
        b'"model_name":"fraud","production":{"version":"v1","score":0.95,"decision":"block",'
        b'"latency_ms":0.1},"shadows":[],"inputs":{}}'
    )
    record = decode_score(old)
    assert (record.schema_version, record.production.explored) == (1, False)
    assert record.production.exploration_share == 0.0


def test_label_record_round_trip_and_refusal() -> None:
    label = LabelRecord(transaction_id="tx-1", is_fraud=True, label_time=1.0, source="chargeback")
    assert decode_label(encode(label)) == label
    with pytest.raises(ValidationError, match="transaction_id"):
        decode_label(b'{"schema_version": 1, "is_fraud": true, "label_time": 1, "source": "x"}')
    with pytest.raises(ValidationError, match="schema_version"):
        decode_label(b'{"schema_version": 2, "transaction_id": "t", "is_fraud": true, '
                     b'"label_time": 1, "source": "x"}')  # fmt: skip
