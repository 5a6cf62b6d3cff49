"""Pure logic: the approval policy's rules and decoding change events (no services)."""

from __future__ import annotations

import json

import pytest

from registry import ApprovalPolicy, RegistryError, RegistryEvent, ShadowEvidence, decode_event


def _evidence(**changes: object) -> ShadowEvidence:
    fields: dict[str, object] = {
        "production_version": "v1",
        "shadow_records": 5000,
        "labeled_records": 300,
        "metric": "false_decline_rate",
        "challenger_value": 0.020,
        "production_value": 0.018,
        "higher_is_better": False,
    }
    fields.update(changes)
    return ShadowEvidence.model_validate(fields)


def test_lower_is_better_metrics_and_labeled_records() -> None:
    policy = ApprovalPolicy(min_shadow_records=1000, min_labeled_records=500, max_regression=0.001)
    assert policy.violations(_evidence(), "v1") == [
        "rule min_labeled_records: 300 labeled records, 500 required",
        "rule max_regression: false_decline_rate is 0.0200 against production's 0.0180, "
        "a regression of 0.0020 > 0.0010 allowed",
    ]
    better = _evidence(challenger_value=0.015, labeled_records=800)
    assert better.regression == pytest.approx(-0.003)
    assert policy.violations(better, "v1") == []


def test_no_production_to_compare_against() -> None:
    first = _evidence(production_version=None, production_value=None)
    assert first.regression is None
    assert ApprovalPolicy(min_labeled_records=0).violations(first, None) == []


def test_evidence_reference_is_content_derived() -> None:
    assert _evidence().ref == _evidence().ref
    assert _evidence().ref != _evidence(shadow_records=5001).ref
    assert _evidence().ref.startswith("evidence:")
    assert len(_evidence().ref) == 25


def test_decode_event() -> None:
    message = {
        "name": "fraud", "version": "v2", "from": "approved", "to": "production",
        "revision": 8, "actor": "bob", "at": "2026-11-27T09:00:00+00:00", "action": "promote",
    }  # fmt: skip
    assert decode_event(json.dumps(message)) == RegistryEvent(
        "fraud", "v2", "approved", "production", 8, "bob", "2026-11-27T09:00:00+00:00", "promote"
    )
    assert decode_event(json.dumps({**message, "from": None})).from_state is None
    with pytest.raises(RegistryError, match=r"^not a registry event: KeyError\('revision'\)"):
        decode_event(json.dumps({k: v for k, v in message.items() if k != "revision"}))
    with pytest.raises(RegistryError, match=r"^not a registry event: "):
        decode_event(b"\xff not json")
