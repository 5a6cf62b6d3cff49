"""Re-verifying a version's stored artifact before it moves toward serving.

Registration validates an artifact once, but the bytes then sit in a store for days or weeks
(a disk flips a bit, someone edits a file, a mount goes away).  So ``shadow``, ``approve`` and
``promote`` verify them again, the way a scorer would load them: the sha256 the store checks on
read, then :func:`registry.validation.validate_model` (ONNX parse, checker, onnxruntime load,
interface, golden examples).  A version that fails is refused with the reason, and the refusal
is appended to the audit log (action ``refuse``) so a reviewer sees why the move did not happen.
Refused moves write nothing else: no state change, no revision bump, no event.
"""

from __future__ import annotations

import redis
from redis.client import Pipeline

from registry.artifacts import ArtifactStore
from registry.constants import version_key
from registry.errors import ArtifactError, ArtifactRefused, ModelNotFound, ValidationFailed
from registry.manifest import Manifest
from registry.states import MOVES, State
from registry.transactions import Change, Plan, Snapshot, transact
from registry.types import Clock
from registry.validation import validate_model

REFUSE_ACTION = "refuse"


def artifact_problem(store: ArtifactStore, manifest: Manifest) -> str | None:
    """What is wrong with the stored artifact of ``manifest`` (None when it verifies)."""
    if manifest.sha256 is None:
        return "the stored manifest has no sha256"
    try:
        artifact = store.get(manifest.sha256)  # the store checks the sha256 on every read
    except ArtifactError as exc:
        return str(exc)
    try:
        validate_model(artifact, manifest)
    except ValidationFailed as exc:
        return "; ".join(exc.problems)
    return None


def verify_for_move(
    client: redis.Redis,
    store: ArtifactStore,
    clock: Clock,
    *,
    record: dict[str, str],
    name: str,
    version: str,
    action: str,
    actor: str,
    reason: str,
) -> None:
    """Verify ``version``'s artifact before ``action``; raise :class:`ArtifactRefused` (after
    auditing the refusal) when it fails.

    ``record`` is the version's stored hash (state, manifest).  A move its state does not allow
    is left to the move's own transaction, which refuses it with ``IllegalTransition``: no
    verification work is spent on it.
    """
    state = State(record["state"])
    if action not in MOVES[state]:
        return
    problem = artifact_problem(store, Manifest.model_validate_json(record["manifest"]))
    if problem is None:
        return

    def plan(pipe: Pipeline, snap: Snapshot) -> Plan[None]:
        current = pipe.hget(version_key(name, version), "state")
        if current is None:
            raise ModelNotFound(name, version)
        now = State(str(current))
        result: Plan[None] = Plan(None, bump=False)
        result.changes.append(
            Change(
                version=version,
                action=REFUSE_ACTION,
                from_state=now,
                to_state=now,
                reason=reason,
                evidence="",
                detail=f"{action} refused: {problem}",
            )
        )
        return result

    transact(client, clock, name, actor, plan)
    raise ArtifactRefused(action, f"{name}:{version}", problem)
