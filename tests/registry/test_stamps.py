"""Stamps of approvals, production changes and rollbacks, and the guarded rollback, on a real
Redis: what the retrain worker and the rollback guard decide from."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from redis.client import Pipeline

from registry import IllegalTransition, ModelRegistry, Stamp, State
from registry.constants import history_key
from registry.transactions import Plan, Snapshot, transact
from registry.types import utc_now
from tests.lifecycle import passing_evidence


def _production(registry: ModelRegistry, registered: Callable[..., str], *versions: str) -> None:
    for version in versions:
        registered(version)
        registry.approve("fraud", version, actor="alice", reason="ok", force=True)
        registry.promote("fraud", version, actor="bob")


def test_an_approval_is_stamped_with_its_audit_entry_and_whether_it_was_forced(
    registry: ModelRegistry, registered: Callable[..., str]
) -> None:
    _production(registry, registered, "v1")
    registered("v2")
    registry.record_evidence("fraud", "v2", passing_evidence("v1"))
    registry.approve("fraud", "v2", actor="ana", reason="beats v1")
    registered("v3")
    registry.approve("fraud", "v3", actor="ana", reason="urgent", force=True)
    audit = {(e.version, e.action): e for e in registry.audit("fraud")}

    v2 = registry.stamps("fraud", "v2")
    entry = audit[("v2", "approve")]
    assert v2.approved == Stamp(seq=entry.seq, at=entry.at, actor="ana", action="approve")
    assert not v2.approved_forced
    assert (v2.production, v2.rolled_back, v2.rolled_back_by_guard) == (None, None, False)
    v3 = registry.stamps("fraud", "v3")
    assert v3.approved_forced
    assert v3.approved is not None
    assert v3.approved.seq == audit[("v3", "approve")].seq
    assert v3.approved.describe() == (
        f"audit seq {v3.approved.seq} at {v3.approved.at.isoformat()} by ana"
    )
    # Forced without any broken rule is not forced: nothing was overridden.
    registered("v4")
    registry.record_evidence("fraud", "v4", passing_evidence("v1"))
    registry.approve("fraud", "v4", actor="ana", reason="fine", force=True)
    assert not registry.stamps("fraud", "v4").approved_forced


def test_production_is_stamped_by_promote_and_by_rollback(
    registry: ModelRegistry, registered: Callable[..., str]
) -> None:
    _production(registry, registered, "v1", "v2")
    v2 = registry.stamps("fraud", "v2")
    assert v2.state is State.PRODUCTION
    assert v2.production is not None
    assert (v2.production.action, v2.production.actor) == ("promote", "bob")
    assert v2.approved is not None
    assert v2.approved.seq < v2.production.seq
    promoted_v1 = registry.stamps("fraud", "v1").production
    assert registry.rollback("fraud", actor="carol", reason="bad") == "v1"
    v1 = registry.stamps("fraud", "v1")
    assert v1.production is not None
    assert promoted_v1 is not None
    assert (v1.production.action, v1.production.actor) == ("rollback", "carol")
    assert v1.production.seq > promoted_v1.seq
    retired = registry.stamps("fraud", "v2")
    assert retired.rolled_back is not None
    assert (retired.rolled_back.actor, retired.rolled_back_by_guard) == ("carol", False)
    entries = [e for e in registry.audit("fraud") if e.action == "rollback"]
    assert {e.seq for e in entries} == {v1.production.seq, retired.rolled_back.seq}


def test_a_rollback_expecting_another_production_is_refused_and_changes_nothing(
    registry: ModelRegistry, registered: Callable[..., str]
) -> None:
    _production(registry, registered, "v1", "v2")
    before = registry.deployment("fraud")
    with pytest.raises(IllegalTransition) as caught:
        registry.rollback("fraud", actor="guard@a", expected="v1", guard=True)
    assert str(caught.value) == "cannot roll back model fraud from v1: production is v2"
    assert registry.deployment("fraud") == before
    assert registry.rollback("fraud", actor="guard@a", expected="v2", guard=True) == "v1"
    stamps = registry.stamps("fraud", "v2")
    assert stamps.rolled_back_by_guard
    assert stamps.rolled_back is not None
    assert stamps.rolled_back.actor == "guard@a"


def test_replicas_racing_to_roll_back_one_promotion_roll_it_back_once(
    registry: ModelRegistry, registered: Callable[..., str]
) -> None:
    _production(registry, registered, "v1", "v2", "v3")

    def attempt(replica: int) -> str:
        try:
            return registry.rollback("fraud", actor=f"guard@{replica}", expected="v3", guard=True)
        except IllegalTransition as exc:
            return str(exc)

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(8)))
    assert outcomes.count("v2") == 1
    assert outcomes.count("cannot roll back model fraud from v3: production is v2") == 7
    assert registry.deployment("fraud").production == "v2"
    retired = [
        e for e in registry.audit("fraud") if e.action == "rollback" and e.to_state == "retired"
    ]
    assert [e.version for e in retired] == ["v3"]
    assert registry.verify_audit("fraud").ok


def test_a_refusal_decided_on_reads_torn_by_a_concurrent_commit_is_planned_again(
    registry: ModelRegistry, registered: Callable[..., str], redis_client: redis.Redis
) -> None:
    _production(registry, registered, "v1", "v2")
    seen: list[str | None] = []

    def plan(pipe: Pipeline, snap: Snapshot) -> Plan[str]:
        seen.append(snap.production)
        if len(seen) == 1:  # another writer commits between the snapshot and the next read
            registry.rollback("fraud", actor="other")
        previous = pipe.lindex(history_key("fraud"), 0)
        if snap.production == "v2" and previous is None:
            raise IllegalTransition("a refusal built on a torn read")
        return Plan(f"production {snap.production}")

    assert transact(redis_client, utc_now, "fraud", "test", plan) == "production v1"
    assert seen == ["v2", "v1"]
