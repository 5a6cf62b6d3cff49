"""Redis key layout, channel names and limits of the registry (one place, so nothing drifts).

Model names and versions cannot contain ``:`` (see ``registry.manifest``), so these keys never
collide.  Every key of one model name starts with ``shadowline:`` and ends with the name.
"""

from __future__ import annotations

EVENTS_CHANNEL = "shadowline:events"
"""Pub/sub channel; one JSON message per state change:
``{"name", "version", "from", "to", "revision", "actor", "at", "action"}``."""

NAMES_KEY = "shadowline:models"  # set of model names
DEFAULT_MAX_ARTIFACT_BYTES = 256 * 1024 * 1024
HISTORY_LIMIT = 20  # production versions kept for successive rollbacks
GENESIS_HASH = "0" * 64  # the "previous hash" of a name's first audit entry
MAX_TRANSACTION_ATTEMPTS = 1000  # optimistic retries before giving up under contention
GOLDEN_TOLERANCE = 1e-4  # absolute difference allowed between a golden score and the model's


def deploy_key(name: str) -> str:
    """Hash: revision, production, audit_head, audit_seq.  Every write to a name touches it,
    so WATCHing it serialises all transitions of that name."""
    return f"shadowline:deploy:{name}"


def shadows_key(name: str) -> str:
    """Hash: version -> sampling rate of each version in state shadow."""
    return f"shadowline:shadows:{name}"


def history_key(name: str) -> str:
    """List, newest first: the production versions a rollback returns to."""
    return f"shadowline:history:{name}"


def versions_key(name: str) -> str:
    """Sorted set: versions by registration order (score = revision at registration)."""
    return f"shadowline:versions:{name}"


def version_key(name: str, version: str) -> str:
    """Hash: state, sha256, manifest (JSON), registered_at, evidence (JSON), evidence_ref, and
    the roll-out stamps of :mod:`registry.stamps`."""
    return f"shadowline:model:{name}:{version}"


def audit_key(name: str) -> str:
    """Stream: the append-only, hash-chained audit log of one model name."""
    return f"shadowline:audit:{name}"


def label_seen_key(transaction_id: str, label_time: float) -> str:
    """String with a TTL: a label of ``transaction_id`` at ``label_time`` taken by ``POST
    /v1/labels`` (its content, or ``pending:`` and its content while it is being written)."""
    return f"shadowline:labels:seen:{label_time!r}:{transaction_id}"
