"""One optimistic Redis transaction per write to a model name.

Every write to a name WATCHes the name's deployment hash, which every write also modifies
(revision, audit head), so all writes to one name are serialised: a writer that lost the race
gets ``WatchError``, re-reads and re-decides (its version may no longer be approved).  State
changes, the revision bump, the hash-chained audit entries and the PUBLISH on
:data:`EVENTS_CHANNEL` are queued in one MULTI, so they happen together or not at all.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import redis
from redis.client import Pipeline

from registry.audit import entry_hash
from registry.constants import (
    EVENTS_CHANNEL,
    GENESIS_HASH,
    MAX_TRANSACTION_ATTEMPTS,
    audit_key,
    deploy_key,
    shadows_key,
    version_key,
)
from registry.errors import Contention, RegistryError
from registry.stamps import stamp_fields
from registry.states import State
from registry.types import Clock

T = TypeVar("T")
Write = Callable[[Pipeline], object]


@dataclass(frozen=True)
class Snapshot:
    revision: int
    production: str | None
    head: str
    seq: int


@dataclass(frozen=True)
class Change:
    version: str
    action: str
    from_state: State | None
    to_state: State
    reason: str = ""
    evidence: str = ""
    detail: str = ""
    # A stamp prefix (registry.stamps): the audit entry of this change is also recorded on
    # the version's hash under it, in the same transaction.
    stamp: str = ""


@dataclass
class Plan(Generic[T]):
    """What one transaction writes: commands, the audited state changes, and its result."""

    value: T
    writes: list[Callable[[Pipeline], object]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    bump: bool = True  # a transition (revision + event) rather than a note


def set_state(name: str, version: str, target: State, *, leaving: State) -> list[Write]:
    """Writes that put ``version`` in ``target``; leaving shadow also leaves the shadow set."""
    writes: list[Write] = [lambda p: p.hset(version_key(name, version), "state", target.value)]
    if leaving is State.SHADOW and target is not State.SHADOW:
        writes.append(lambda p: p.hdel(shadows_key(name), version))
        writes.append(lambda p: p.hdel(version_key(name, version), "rate"))
    return writes


def mark(name: str, version: str, field_name: str, value: bool) -> Write:
    """A write that sets a "1"/"0" flag on the version's hash."""
    return lambda p: p.hset(version_key(name, version), field_name, "1" if value else "0")


def transact(
    client: redis.Redis,
    clock: Clock,
    name: str,
    actor: str,
    plan: Callable[[Pipeline, Snapshot], Plan[T]],
) -> T:
    """Run ``plan`` under WATCH of the name's deployment hash and commit its writes,
    audit entries and events atomically; re-run it when another writer got there first."""
    with client.pipeline() as pipe:
        for attempt in range(MAX_TRANSACTION_ATTEMPTS):
            try:
                pipe.watch(deploy_key(name))  # type: ignore[no-untyped-call]
                raw = cast(dict[str, str], pipe.hgetall(deploy_key(name)))
                snap = Snapshot(
                    revision=int(raw.get("revision", 0)),
                    production=raw.get("production") or None,
                    head=raw.get("audit_head") or GENESIS_HASH,
                    seq=int(raw.get("audit_seq", 0)),
                )
                try:
                    result = plan(pipe, snap)
                except RegistryError:
                    # A refusal is decided without EXEC, so WATCH cannot catch a writer that
                    # committed between the plan's reads (seen: a rollback refused for "no
                    # previous production version" while production was already rolled
                    # back).  Every write bumps audit_seq: if it moved, re-plan.
                    if int(pipe.hget(deploy_key(name), "audit_seq") or 0) != snap.seq:
                        pipe.reset()
                        raise redis.WatchError(f"model {name} changed while planning") from None
                    raise
                if not result.writes and not result.changes:
                    pipe.reset()
                    return result.value
                pipe.multi()
                _queue(pipe, clock, name, actor, snap, result)
                pipe.execute()
                return result.value
            except redis.WatchError:
                # Lost the race: back off a little (more after repeated losses) and re-plan.
                time.sleep(random.uniform(0, 0.001) * min(attempt + 1, 20))  # noqa: S311
    raise Contention(name, MAX_TRANSACTION_ATTEMPTS)


def _queue(
    pipe: Pipeline, clock: Clock, name: str, actor: str, snap: Snapshot, plan: Plan[Any]
) -> None:
    for write in plan.writes:
        write(pipe)
    revision = snap.revision + 1 if plan.bump else snap.revision
    head, seq = snap.head, snap.seq
    at = clock().isoformat()
    for change in plan.changes:
        seq += 1
        fields = {
            "seq": str(seq),
            "at": at,
            "actor": actor,
            "action": change.action,
            "version": change.version,
            "from": change.from_state.value if change.from_state else "",
            "to": change.to_state.value,
            "reason": change.reason,
            "evidence": change.evidence,
            "revision": str(revision),
            "detail": change.detail,
            "prev": head,
        }
        fields["hash"] = head = entry_hash(fields)
        pipe.xadd(audit_key(name), cast(Any, fields))
        if change.stamp:
            stamp = stamp_fields(change.stamp, seq=seq, at=at, actor=actor, action=change.action)
            pipe.hset(version_key(name, change.version), mapping=cast(Any, stamp))
        if plan.bump:
            event = {
                "name": name,
                "version": change.version,
                "from": fields["from"] or None,
                "to": fields["to"],
                "revision": revision,
                "actor": actor,
                "at": at,
                "action": change.action,
            }
            pipe.publish(EVENTS_CHANNEL, json.dumps(event))
    mapping = {"audit_head": head, "audit_seq": str(seq)}
    if plan.bump:
        mapping["revision"] = str(revision)
    pipe.hset(deploy_key(name), mapping=cast(Any, mapping))
