"""The lifecycle against a real Redis: every transition, the live set, events, rollback."""

from __future__ import annotations

import json
from collections.abc import Callable

import redis

from registry import (
    EVENTS_CHANNEL,
    Deployment,
    ModelRegistry,
    State,
    decode_event,
)
from registry.artifacts import sha256_hex
from registry.manifest import Manifest
from tests.factories import make_evidence as good_evidence

ModelFor = Callable[..., tuple[bytes, Manifest]]
Registered = Callable[..., str]


def _live(registry: ModelRegistry, version: str) -> None:
    """Take a registered version to production (first production: no evidence comparison)."""
    registry.shadow("fraud", version, rate=0.5, actor="alice")
    registry.record_evidence(
        "fraud", version, good_evidence(registry.deployment("fraud").production)
    )
    registry.approve("fraud", version, actor="bob", reason="beats production")
    registry.promote("fraud", version, actor="bob")


def test_register_stores_manifest_and_verified_artifact(
    registry: ModelRegistry, model_for: ModelFor
) -> None:
    model, manifest = model_for("v1")
    stored = registry.register(model, manifest, actor="alice", reason="first model")
    assert stored.sha256 == sha256_hex(model)
    assert stored.created_at is not None
    assert registry.manifest("fraud", "v1") == stored
    assert registry.artifact("fraud", "v1") == model
    assert registry.state("fraud", "v1") is State.REGISTERED
    assert registry.deployment("fraud") == Deployment(
        name="fraud", revision=1, production=None, previous_production=None, shadows={}
    )


def test_shadow_promote_rollback_and_the_live_set(
    registry: ModelRegistry, registered: Registered
) -> None:
    registered("v1")
    _live(registry, "v1")
    assert registry.deployment("fraud") == Deployment(
        name="fraud", revision=4, production="v1", previous_production=None, shadows={}
    )
    registered("v2")
    registry.shadow("fraud", "v2", rate=0.25, actor="alice")
    assert registry.deployment("fraud") == Deployment(
        name="fraud", revision=6, production="v1", previous_production=None, shadows={"v2": 0.25}
    )
    registry.record_evidence("fraud", "v2", good_evidence("v1"))
    registry.approve("fraud", "v2", actor="bob", reason="catches more fraud")
    assert registry.deployment("fraud").shadows == {}
    registry.promote("fraud", "v2", actor="bob")
    assert registry.deployment("fraud") == Deployment(
        name="fraud", revision=8, production="v2", previous_production="v1", shadows={}
    )
    assert registry.state("fraud", "v1") is State.RETIRED
    assert registry.rollback("fraud", actor="carol", reason="false declines up") == "v1"
    assert registry.deployment("fraud") == Deployment(
        name="fraud", revision=9, production="v1", previous_production=None, shadows={}
    )
    assert registry.state("fraud", "v2") is State.RETIRED
    assert registry.state("fraud", "v1") is State.PRODUCTION


def test_every_transition_publishes_an_event(
    registry: ModelRegistry, registered: Registered, redis_client: redis.Redis
) -> None:
    pubsub = redis_client.pubsub()  # type: ignore[no-untyped-call]
    pubsub.subscribe(EVENTS_CHANNEL)
    assert pubsub.get_message(timeout=1.0) is not None  # the subscribe confirmation
    registered("v1")
    _live(registry, "v1")
    registered("v2")
    registry.shadow("fraud", "v2", rate=1.0, actor="alice")
    registry.record_evidence("fraud", "v2", good_evidence("v1"))
    registry.approve("fraud", "v2", actor="bob", reason="better", force=False)
    registry.promote("fraud", "v2", actor="bob")
    events = []
    for _ in range(9):  # as many as the transitions below; each is already published
        message = pubsub.get_message(timeout=5.0)
        assert message is not None
        events.append(json.loads(message["data"]))
        decoded = decode_event(message["data"])
        assert (decoded.version, decoded.revision) == (
            events[-1]["version"],
            events[-1]["revision"],
        )
    assert pubsub.get_message(timeout=0.05) is None  # nothing more, e.g. for the evidence
    pubsub.close()
    moves = [(e["version"], e["from"], e["to"], e["revision"]) for e in events]
    assert moves == [
        ("v1", None, "registered", 1),
        ("v1", "registered", "shadow", 2),
        ("v1", "shadow", "approved", 3),
        ("v1", "approved", "production", 4),
        ("v2", None, "registered", 5),
        ("v2", "registered", "shadow", 6),
        ("v2", "shadow", "approved", 7),
        ("v1", "production", "retired", 8),
        ("v2", "approved", "production", 8),
    ]
    assert {e["name"] for e in events} == {"fraud"}
    assert events[-1]["actor"] == "bob"
    assert events[-1]["action"] == "promote"
