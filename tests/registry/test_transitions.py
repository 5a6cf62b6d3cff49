"""Every transition and every refusal, with the exact messages, against a real Redis."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from registry import (
    AlreadyRegistered,
    ArtifactStore,
    IllegalTransition,
    InvalidRequest,
    ModelNotFound,
    ModelRegistry,
    PolicyViolation,
    State,
    ValidationFailed,
)
from registry.manifest import Manifest
from tests.factories import make_evidence as good_evidence
from tests.registry.stores import stored_objects

ACTIONS = ("shadow", "unshadow", "approve", "promote", "retire", "reject")
# Written out rather than derived from registry.states.MOVES, so a change to the table shows here.
ALLOWED = {
    State.REGISTERED: "approve, reject, retire, shadow",
    State.SHADOW: "approve, reject, retire, unshadow",
    State.APPROVED: "promote, reject, retire",
    State.PRODUCTION: "none",
    State.RETIRED: "none",
    State.REJECTED: "none",
}
RESULT = {
    ("registered", "shadow"): State.SHADOW,
    ("registered", "approve"): State.APPROVED,
    ("registered", "retire"): State.RETIRED,
    ("registered", "reject"): State.REJECTED,
    ("shadow", "unshadow"): State.REGISTERED,
    ("shadow", "approve"): State.APPROVED,
    ("shadow", "retire"): State.RETIRED,
    ("shadow", "reject"): State.REJECTED,
    ("approved", "promote"): State.PRODUCTION,
    ("approved", "retire"): State.RETIRED,
    ("approved", "reject"): State.REJECTED,
}


def _do(registry: ModelRegistry, action: str, version: str) -> None:
    if action == "shadow":
        registry.shadow("fraud", version, rate=0.5, actor="alice")
    elif action == "approve":
        registry.approve("fraud", version, actor="alice", reason="looks good", force=True)
    elif action == "reject":
        registry.reject("fraud", version, actor="alice", reason="worse than production")
    else:
        getattr(registry, action)("fraud", version, actor="alice")


def _reach(registry: ModelRegistry, registered: Callable[..., str], state: State) -> str:
    version = registered("v1")
    path = {
        State.REGISTERED: [],
        State.SHADOW: ["shadow"],
        State.APPROVED: ["approve"],
        State.PRODUCTION: ["approve", "promote"],
        State.RETIRED: ["retire"],
        State.REJECTED: ["reject"],
    }[state]
    for action in path:
        _do(registry, action, version)
    assert registry.state("fraud", version) is state
    return version


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("action", ACTIONS)
def test_each_action_from_each_state(
    registry: ModelRegistry, registered: Callable[..., str], state: State, action: str
) -> None:
    version = _reach(registry, registered, state)
    before = registry.deployment("fraud")
    target = RESULT.get((state.value, action))
    if target is None:
        with pytest.raises(IllegalTransition) as caught:
            _do(registry, action, version)
        assert str(caught.value) == (
            f"cannot {action} model fraud:v1: it is in state {state.value}; "
            f"allowed moves: {ALLOWED[state]}"
        )
        assert registry.state("fraud", version) is state
        assert registry.deployment("fraud") == before  # nothing changed, no revision bump
        return
    _do(registry, action, version)
    assert registry.state("fraud", version) is target
    after = registry.deployment("fraud")
    assert after.revision == before.revision + 1
    assert after.shadows == ({"v1": 0.5} if target is State.SHADOW else {})
    assert after.production == ("v1" if target is State.PRODUCTION else None)
    last = registry.audit("fraud")[-1]
    assert (last.action, last.version, last.from_state, last.to_state, last.actor) == (
        action,
        "v1",
        state.value,
        target.value,
        "alice",
    )


def test_unknown_versions_and_names(
    registry: ModelRegistry, registered: Callable[..., str]
) -> None:
    with pytest.raises(ModelNotFound) as caught:
        registry.shadow("fraud", "v9", rate=0.1, actor="alice")
    assert str(caught.value) == "model fraud:v9 is not registered"
    with pytest.raises(ModelNotFound) as by_name:
        registry.audit("fraud")
    assert str(by_name.value) == "no model named fraud is registered"
    for read in (registry.manifest, registry.artifact, registry.state, registry.evidence):
        with pytest.raises(ModelNotFound):
            read("fraud", "v9")
    registered("v1")
    with pytest.raises(ModelNotFound, match=r"^model fraud:v2 is not registered$"):
        registry.note("fraud", "v2", "load failed", actor="scorer-1")


def test_rollback_refusals(registry: ModelRegistry, registered: Callable[..., str]) -> None:
    with pytest.raises(ModelNotFound, match=r"^no model named fraud is registered$"):
        registry.rollback("fraud", actor="alice")
    registered("v1")
    with pytest.raises(IllegalTransition) as none:
        registry.rollback("fraud", actor="alice")
    assert str(none.value) == "cannot roll back model fraud: it has no production version"
    _do(registry, "approve", "v1")
    _do(registry, "promote", "v1")
    with pytest.raises(IllegalTransition) as first:
        registry.rollback("fraud", actor="alice")
    assert str(first.value) == (
        "cannot roll back model fraud: production version v1 has no previous production version"
    )


def test_successive_rollbacks_walk_back_the_history(
    registry: ModelRegistry, registered: Callable[..., str]
) -> None:
    for version in ("v1", "v2", "v3"):
        registered(version)
        _do(registry, "approve", version)
        _do(registry, "promote", version)
    assert registry.deployment("fraud").previous_production == "v2"
    assert registry.rollback("fraud", actor="alice", reason="bad") == "v2"
    assert registry.deployment("fraud").previous_production == "v1"
    assert registry.rollback("fraud", actor="alice", reason="worse") == "v1"
    assert registry.deployment("fraud").previous_production is None
    assert [s.state for s in registry.list("fraud")] == [
        State.PRODUCTION,
        State.RETIRED,
        State.RETIRED,
    ]


def test_bad_arguments_are_refused(registry: ModelRegistry, registered: Callable[..., str]) -> None:
    registered("v1")
    for rate in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(InvalidRequest) as caught:
            registry.shadow("fraud", "v1", rate=rate, actor="alice")
        assert str(caught.value) == f"shadow rate must be in (0, 1]; got {rate}"
    with pytest.raises(InvalidRequest, match=r"^actor must not be empty$"):
        registry.shadow("fraud", "v1", rate=0.5, actor=" ")
    with pytest.raises(InvalidRequest, match=r"^the reason for a rejection must not be empty$"):
        registry.reject("fraud", "v1", actor="alice", reason="")
    with pytest.raises(InvalidRequest, match=r"^the reason for an approval must not be empty$"):
        registry.approve("fraud", "v1", actor="alice", reason="  ", force=True)
    with pytest.raises(InvalidRequest, match=r"^the note must not be empty$"):
        registry.note("fraud", "v1", "", actor="scorer")
    assert registry.state("fraud", "v1") is State.REGISTERED


def test_registering_a_version_twice(
    registry: ModelRegistry, model_for: Callable[..., tuple[bytes, Manifest]]
) -> None:
    model, manifest = model_for("v1")
    first = registry.register(model, manifest, actor="alice")
    assert registry.register(model, manifest, actor="alice") == first  # idempotent
    other, _ = model_for("v2")
    with pytest.raises(AlreadyRegistered) as caught:
        registry.register(other, manifest, actor="alice")
    assert str(caught.value) == (
        f"model fraud:v1 is already registered with artifact {str(first.sha256)[:12]}; this "
        f"artifact is {hashlib.sha256(other).hexdigest()[:12]} (register it under a new version)"
    )
    assert len(registry.audit("fraud")) == 1


def test_manifest_sha256_must_match(
    registry: ModelRegistry, model_for: Callable[..., tuple[bytes, Manifest]]
) -> None:
    model, manifest = model_for("v1")
    wrong = manifest.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(ValidationFailed) as caught:
        registry.register(model, wrong, actor="alice")
    digest = hashlib.sha256(model).hexdigest()
    assert str(caught.value) == (
        f"model fraud:v1 refused: the manifest's sha256 {'0' * 64} is not the artifact's "
        f"sha256 {digest}"
    )


def test_a_refused_model_leaves_nothing_behind(
    registry: ModelRegistry,
    model_for: Callable[..., tuple[bytes, Manifest]],
    store: ArtifactStore,
) -> None:
    _, manifest = model_for("v1")
    with pytest.raises(ValidationFailed):
        registry.register(b"not a model", manifest, actor="alice")
    assert registry.list() == []
    assert registry.deployment("fraud").revision == 0
    assert stored_objects(store) == []  # nothing was written


def test_approval_policy_is_enforced(
    registry: ModelRegistry, registered: Callable[..., str]
) -> None:
    registered("v1")
    _do(registry, "approve", "v1")
    _do(registry, "promote", "v1")
    registered("v2")
    registry.shadow("fraud", "v2", rate=0.5, actor="alice")
    with pytest.raises(PolicyViolation) as none:
        registry.approve("fraud", "v2", actor="bob", reason="trust me")
    assert str(none.value) == (
        "cannot approve model fraud:v2: rule evidence_required: no shadow evidence is recorded "
        "for it (run shadow analysis, or force with a written reason)"
    )
    weak = good_evidence("v0", compared=40, matured_frauds=12, challenger=0.75, low=-0.2)
    registry.record_evidence("fraud", "v2", weak)
    with pytest.raises(PolicyViolation) as broken:
        registry.approve("fraud", "v2", actor="bob", reason="trust me")
    assert str(broken.value) == (
        "cannot approve model fraud:v2: rule evidence_current: the live evidence compares "
        "against production v0, but production is now v1; rule min_shadow_records: 40 compared "
        "transactions, 100 required; rule min_matured_frauds: 12 labeled frauds among matured "
        "transactions, 50 required (too few to tell the models apart: wait for labels or "
        "replay archived traffic); rule non_inferiority: fraud_caught_at_block_rate differs by "
        "-0.0500 (challenger minus production); its lower bound at 97.50% (1 look(s)) is "
        "-0.2000, not above -0.0100"
    )
    assert registry.state("fraud", "v2") is State.SHADOW
    registry.approve("fraud", "v2", actor="bob", reason="holiday traffic skews it", force=True)
    entry = registry.audit("fraud")[-1]
    assert entry.action == "approve"
    assert entry.reason == "holiday traffic skews it"
    recorded = registry.evidence("fraud", "v2")
    assert recorded is not None
    assert recorded.shadow_records == 40
    assert entry.evidence == recorded.ref
    assert entry.detail.startswith("forced past policy: rule evidence_current: ")


def test_approval_with_good_evidence(
    registry: ModelRegistry, registered: Callable[..., str]
) -> None:
    registered("v1")
    registry.shadow("fraud", "v1", rate=1.0, actor="alice")
    registry.record_evidence("fraud", "v1", good_evidence(None))
    registry.approve("fraud", "v1", actor="bob", reason="first model, good recall")
    entry = registry.audit("fraud")[-1]
    assert entry.detail == "policy satisfied"
    assert entry.evidence.startswith("evidence:")
    evidence_entry = registry.audit("fraud")[-2]
    assert (evidence_entry.action, evidence_entry.actor) == ("evidence", "shadow-analysis")
    assert evidence_entry.evidence == entry.evidence
    assert evidence_entry.detail == (
        "live: 5000 compared, 120 matured frauds; fraud_caught_at_block_rate 0.8100"
    )
    registry.record_evidence("fraud", "v1", good_evidence(None), actor="weekly-job")
    assert registry.audit("fraud")[-1].actor == "weekly-job"
    assert registry.deployment("fraud").revision == 3  # evidence is not a transition
