"""Wire records: encode, decode, and refusals that name the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from registry.manifest import Decision, describe_validation_error
from registry.records import (
    LabelInput,
    LabelRecord,
    ProductionScore,
    ScoreRecord,
    ShadowScore,
    decode_label,
    decode_score,
    encode,
    utc_text,
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
        decode_label(
            b'{"schema_version": 2, "transaction_id": "t", "is_fraud": true, '
            b'"label_time": 1, "source": "x"}'
        )


def test_label_input_checks_the_future_only_against_a_given_now() -> None:
    nov_20 = 1795168800.0  # 2026-11-20T10:00:00Z
    row = {"transaction_id": "tx-1", "is_fraud": "true", "label_time": "2026-11-20T10:00:00"}
    assert LabelInput.model_validate(row).record("manual") == LabelRecord(
        transaction_id="tx-1", is_fraud=True, label_time=nov_20, source="manual"
    )
    later = {**row, "label_time": nov_20 + 301}
    LabelInput.model_validate(later)  # no "now": nothing to compare with
    LabelInput.model_validate(later, context={"now": nov_20, "clock_skew_s": 302})
    with pytest.raises(ValidationError) as info:
        LabelInput.model_validate(later, context={"now": nov_20, "clock_skew_s": 300})
    assert describe_validation_error(info.value) == (
        "label_time: 2026-11-20T10:05:01Z is in the future (now 2026-11-20T10:00:00Z; "
        "clock skew allowed 300 s)"
    )
    assert utc_text(1e300) == "1e+300 (unix seconds)"
