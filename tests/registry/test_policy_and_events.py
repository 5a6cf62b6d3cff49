"""Pure logic: the approval policy's rules and decoding change events (no services)."""

from __future__ import annotations

import json

import pytest

from registry import ApprovalPolicy, RegistryError, RegistryEvent, ShadowEvidence, decode_event
from tests.factories import make_evidence

POLICY = ApprovalPolicy(min_shadow_records=1000, min_matured_frauds=50, tolerance=0.02)


def test_non_inferiority_judges_the_lower_bound_not_the_point_value() -> None:
    # Better on the point value, but the interval reaches below -tolerance: refused.
    noisy = make_evidence(challenger=0.83, production_value=0.80, low=-0.05, high=0.11)
    assert POLICY.violations(noisy, "v1") == [
        "rule non_inferiority: fraud_caught_at_block_rate differs by +0.0300 (challenger minus "
        "production); its lower bound at 97.50% (1 look(s)) is -0.0500, not above -0.0200"
    ]
    # Worse on the point value, but confidently within the tolerance: approved.
    close = make_evidence(challenger=0.795, production_value=0.80, low=-0.015, high=0.005)
    assert POLICY.violations(close, "v1") == []


def test_too_few_matured_frauds_or_immature_labels_refuse_for_lack_of_evidence() -> None:
    thin = make_evidence(matured_frauds=12, maturity=0.55)
    assert POLICY.violations(thin, "v1") == [
        "rule min_matured_frauds: 12 labeled frauds among matured transactions, 50 required "
        "(too few to tell the models apart: wait for labels or replay archived traffic)",
        "rule min_label_maturity: 55% of eventual labels expected in on the matured "
        "transactions, 80% required",
    ]
    assert POLICY.decisive(thin) is False
    assert POLICY.decisive(make_evidence(matured_frauds=50)) is True


def test_evidence_from_before_intervals_asks_for_a_new_analysis() -> None:
    old = ShadowEvidence(
        production_version="v1",
        shadow_records=5000,
        challenger_value=0.81,
        production_value=0.80,
        matured_frauds=300,
    )
    assert POLICY.violations(old, "v1") == [
        "rule min_label_maturity: unknown of eventual labels expected in on the matured "
        "transactions, 80% required",
        "rule non_inferiority: the evidence has no interval for the difference (recorded "
        "before intervals existed, or undefined): run the analysis again",
    ]


def test_replay_evidence_judges_labels_and_live_records_are_a_separate_minimum() -> None:
    policy = ApprovalPolicy(min_shadow_records=1000, min_live_records=2000)
    replay = make_evidence(source="replay", compared=400_000, matured_frauds=900)
    live = make_evidence(compared=1500, matured_frauds=3, low=-0.4)
    # The replay has more matured frauds, so the labeled rules judge it; the live one only
    # counts towards min_live_records.
    assert policy.violations(live, "v1", replay=replay) == [
        "rule min_live_records: 1500 transactions scored in live shadow, 2000 required"
    ]
    assert policy.violations(None, "v1", replay=replay) == [
        "rule min_live_records: 0 transactions scored in live shadow, 2000 required"
    ]
    stale = make_evidence(source="replay", production="v0", matured_frauds=900)
    assert policy.violations(None, "v1", replay=stale)[0] == (
        "rule evidence_current: the replay evidence compares against production v0, "
        "but production is now v1"
    )


def test_no_production_to_compare_against() -> None:
    first = make_evidence(None)
    assert first.regression is None
    assert ApprovalPolicy().violations(first, None) == []


def _evidence(**changes: object) -> ShadowEvidence:
    return make_evidence(**changes)  # type: ignore[arg-type]


def test_evidence_reference_is_content_derived() -> None:
    assert _evidence().ref == _evidence().ref
    assert _evidence().ref != _evidence(compared=5001).ref
    assert _evidence().ref.startswith("evidence:")
    assert len(_evidence().ref) == 25


def test_decode_event() -> None:
    message = {
        "name": "fraud",
        "version": "v2",
        "from": "approved",
        "to": "production",
        "revision": 8,
        "actor": "bob",
        "at": "2026-11-27T09:00:00+00:00",
        "action": "promote",
    }
    assert decode_event(json.dumps(message)) == RegistryEvent(
        name="fraud",
        version="v2",
        from_state="approved",
        to_state="production",
        revision=8,
        actor="bob",
        at="2026-11-27T09:00:00+00:00",
        action="promote",
    )
    assert decode_event(json.dumps({**message, "from": None})).from_state is None
    with pytest.raises(RegistryError, match=r"^not a registry event: KeyError\('revision'\)"):
        decode_event(json.dumps({k: v for k, v in message.items() if k != "revision"}))
    with pytest.raises(RegistryError, match=r"^not a registry event: "):
        decode_event(b"\xff not json")
