"""The audit log: what each entry records, and that tampering is detected."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any, cast

import pytest
import redis

from registry import ModelNotFound, ModelRegistry
from registry.audit import entry_hash
from registry.constants import audit_key


def _history(registry: ModelRegistry, registered: Callable[..., str]) -> None:
    registered("v1")
    registry.shadow("fraud", "v1", rate=0.1, actor="alice", reason="try it")
    registry.approve("fraud", "v1", actor="bob", reason="first model", force=True)
    registry.promote("fraud", "v1", actor="bob", reason="go live")
    registry.note("fraud", "v1", "replica scorer-2 failed to load it: out of memory", actor="s2")


def _rewrite(client: redis.Redis, index: int, change: Callable[[dict[str, str]], None]) -> None:
    """Rewrite one entry in place, keeping every stream id (streams cannot be edited, so
    delete the stream and re-add every entry with its original id)."""
    entries = cast(list[tuple[str, dict[str, str]]], client.xrange(audit_key("fraud")))
    client.delete(audit_key("fraud"))
    for i, (entry_id, fields) in enumerate(entries):
        if i == index:
            change(fields)
        client.xadd(audit_key("fraud"), cast(Any, fields), id=entry_id)


def test_entries_record_who_when_what_and_why(
    registry: ModelRegistry, registered: Callable[..., str]
) -> None:
    _history(registry, registered)
    entries = registry.audit("fraud")
    assert [(e.seq, e.action, e.from_state, e.to_state, e.actor, e.reason) for e in entries] == [
        (1, "register", None, "registered", "alice", ""),
        (2, "shadow", "registered", "shadow", "alice", "try it"),
        (3, "approve", "shadow", "approved", "bob", "first model"),
        (4, "promote", "approved", "production", "bob", "go live"),
        (
            5,
            "note",
            "production",
            "production",
            "s2",
            "replica scorer-2 failed to load it: out of memory",
        ),
    ]
    assert [e.revision for e in entries] == [1, 2, 3, 4, 4]  # a note is not a transition
    assert entries[1].detail == "rate 0.1"
    assert entries[2].detail.startswith("forced past policy: rule evidence_required")
    assert entries[3].detail == "first production version"
    assert all(e.at.tzinfo is not None for e in entries)
    assert entries[0].at < entries[-1].at <= datetime(2026, 11, 28, tzinfo=UTC)
    assert entries[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in pairwise(entries))
    verification = registry.verify_audit("fraud")
    assert verification.ok
    assert (verification.name, verification.entries, verification.problems) == ("fraud", 5, ())
    assert entries[0].as_dict()["from"] is None


def test_a_deleted_entry_is_detected(
    registry: ModelRegistry, registered: Callable[..., str], redis_client: redis.Redis
) -> None:
    _history(registry, registered)
    third = registry.audit("fraud")[2]
    fourth = registry.audit("fraud")[3]
    assert redis_client.xdel(audit_key("fraud"), third.id) == 1
    result = registry.verify_audit("fraud")
    assert not result.ok
    assert result.problems == (
        f"entry 4 (id {fourth.id}): entry 3 is missing",
        f"entry 4 (id {fourth.id}): its previous-entry hash does not match the entry before it",
    )


def test_a_deleted_newest_entry_is_detected(
    registry: ModelRegistry, registered: Callable[..., str], redis_client: redis.Redis
) -> None:
    _history(registry, registered)
    newest = registry.audit("fraud")[-1]
    redis_client.xdel(audit_key("fraud"), newest.id)
    assert registry.verify_audit("fraud").problems == (
        "the log ends before the newest entry: entry 5 is missing",
    )


def test_an_edited_entry_is_detected(
    registry: ModelRegistry, registered: Callable[..., str], redis_client: redis.Redis
) -> None:
    _history(registry, registered)
    approve = registry.audit("fraud")[2]

    def blame_someone_else(fields: dict[str, str]) -> None:
        fields["actor"] = "mallory"

    _rewrite(redis_client, 2, blame_someone_else)
    assert registry.audit("fraud")[2].actor == "mallory"
    assert registry.verify_audit("fraud").problems == (
        f"entry 3 (id {approve.id}): its content does not match its hash (edited)",
    )


def test_an_edited_entry_with_a_recomputed_hash_is_detected(
    registry: ModelRegistry, registered: Callable[..., str], redis_client: redis.Redis
) -> None:
    _history(registry, registered)
    promote = registry.audit("fraud")[3]

    def rewrite_and_rehash(fields: dict[str, str]) -> None:
        fields["reason"] = "approved by the committee"
        fields["hash"] = entry_hash(fields)

    _rewrite(redis_client, 2, rewrite_and_rehash)
    assert registry.verify_audit("fraud").problems == (
        f"entry 4 (id {promote.id}): its previous-entry hash does not match the entry before it",
    )


def test_rewriting_the_newest_entry_consistently_is_caught_by_the_head(
    registry: ModelRegistry, registered: Callable[..., str], redis_client: redis.Redis
) -> None:
    _history(registry, registered)

    def hide_the_note(fields: dict[str, str]) -> None:
        fields["reason"] = "all fine"
        fields["hash"] = entry_hash(fields)

    _rewrite(redis_client, 4, hide_the_note)
    assert registry.verify_audit("fraud").problems == (
        "the newest entry is not the recorded head of the log (rewritten)",
    )


def test_unknown_name(registry: ModelRegistry) -> None:
    with pytest.raises(ModelNotFound, match=r"^no model named nope is registered$"):
        registry.verify_audit("nope")
