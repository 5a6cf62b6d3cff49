"""A version whose stored artifact went bad after registration cannot move toward serving.

Reproduces the defect where a version with one flipped byte in its stored artifact could be
approved and promoted: shadow, approve and promote now re-verify the artifact, refuse with the
reason, and the audit log records the refusal.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from registry import ArtifactRefused, FileArtifactStore, ModelRegistry, State
from registry.artifacts import sha256_hex
from tests.factories import flip_stored_byte


def stored_sha(registry: ModelRegistry, version: str) -> str:
    sha = registry.manifest("fraud", version).sha256
    assert sha is not None
    return sha


def corrupt(registry: ModelRegistry, store: FileArtifactStore, version: str) -> str:
    """Flip one byte of ``version``'s stored artifact; the expected checksum problem."""
    sha = stored_sha(registry, version)
    path = flip_stored_byte(store.root, sha)
    return f"artifact {sha} failed its checksum: the stored bytes hash to " + sha256_hex(
        path.read_bytes()
    )


@pytest.mark.parametrize("action", ["shadow", "approve", "promote"])
def test_a_flipped_byte_refuses_each_move_toward_serving(
    registry: ModelRegistry,
    store: FileArtifactStore,
    registered: Callable[..., str],
    action: str,
) -> None:
    registered("v1")
    if action == "promote":
        registry.approve("fraud", "v1", actor="alice", reason="set-up", force=True)
    before = registry.state("fraud", "v1")
    revision = registry.deployment("fraud").revision
    problem = corrupt(registry, store, "v1")
    moves: dict[str, Callable[[], object]] = {
        "shadow": lambda: registry.shadow("fraud", "v1", rate=0.5, actor="bob", reason="try"),
        "approve": lambda: registry.approve("fraud", "v1", actor="bob", reason="try", force=True),
        "promote": lambda: registry.promote("fraud", "v1", actor="bob", reason="try"),
    }
    with pytest.raises(ArtifactRefused) as refused:
        moves[action]()
    assert str(refused.value) == (
        f"cannot {action} model fraud:v1: its stored artifact failed verification: {problem}"
    )
    assert refused.value.problems == (problem,)
    # Nothing moved: same state, same revision (no event), and the refusal is audited.
    assert registry.state("fraud", "v1") is before
    deployment = registry.deployment("fraud")
    assert (deployment.revision, deployment.production) == (revision, None)
    last = registry.audit("fraud")[-1]
    assert (last.actor, last.action, last.version, last.reason) == ("bob", "refuse", "v1", "try")
    assert (last.from_state, last.to_state) == (before.value, before.value)
    assert last.detail == f"{action} refused: {problem}"
    assert registry.verify_audit("fraud").ok


def test_a_missing_artifact_is_refused(
    registry: ModelRegistry, store: FileArtifactStore, registered: Callable[..., str]
) -> None:
    registered("v1")
    sha = stored_sha(registry, "v1")
    (store.root / sha[:2] / sha).unlink()
    with pytest.raises(ArtifactRefused) as refused:
        registry.approve("fraud", "v1", actor="bob", reason="try")
    assert str(refused.value) == (
        "cannot approve model fraud:v1: its stored artifact failed verification: "
        f"artifact {sha} is not in the store"
    )


def test_bytes_that_hash_right_but_fail_validation_are_refused(
    registry: ModelRegistry,
    store: FileArtifactStore,
    registered: Callable[..., str],
    redis_client: redis.Redis,
) -> None:
    """A store that returns what it was given, checksum and all, but the graph no longer
    fulfils the manifest (here: another model's bytes stored under this version's sha256)."""
    registered("v1")
    registered("v2")
    sha1, sha2 = stored_sha(registry, "v1"), stored_sha(registry, "v2")

    class Swapped(FileArtifactStore):
        def get(self, sha256: str) -> bytes:
            return super().get(sha2 if sha256 == sha1 else sha256)

    swapped = ModelRegistry(redis_client, Swapped(store.root))
    with pytest.raises(ArtifactRefused) as refused:
        swapped.shadow("fraud", "v1", rate=0.5, actor="bob")
    assert str(refused.value).startswith(
        "cannot shadow model fraud:v1: its stored artifact failed verification: "
        "golden example 0: score "
    )


def test_illegal_moves_are_refused_before_any_verification(
    registry: ModelRegistry, store: FileArtifactStore, registered: Callable[..., str]
) -> None:
    registered("v1")
    corrupt(registry, store, "v1")
    entries = len(registry.audit("fraud"))
    with pytest.raises(Exception, match="it is in state registered"):
        registry.promote("fraud", "v1", actor="bob")
    assert len(registry.audit("fraud")) == entries  # no refusal entry: the state refused it


def test_a_good_artifact_moves_without_a_refusal(
    registry: ModelRegistry, registered: Callable[..., str]
) -> None:
    registered("v1")
    registry.shadow("fraud", "v1", rate=0.5, actor="bob")
    registry.approve("fraud", "v1", actor="bob", reason="ok", force=True)
    registry.promote("fraud", "v1", actor="bob")
    assert registry.state("fraud", "v1") is State.PRODUCTION
    assert not [e for e in registry.audit("fraud") if e.action == "refuse"]
