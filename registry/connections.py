"""Client construction from settings: the single place a Redis DSN is parsed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from registry.config import SharedSettings

if TYPE_CHECKING:
    from registry.artifacts import FileArtifactStore
    from registry.lifecycle import ModelRegistry
    from registry.policy import ApprovalPolicy


def redis_client(settings: SharedSettings, *, timeout_s: float = 2.0) -> redis.Redis:
    """A synchronous Redis client for ``settings.redis_url`` (responses decoded as str).

    Nothing is sent until the first command; connection errors surface there as
    ``redis.ConnectionError``.
    """
    return redis.Redis.from_url(
        settings.redis_url.get_secret_value(),
        decode_responses=True,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )


def artifact_store(settings: SharedSettings) -> FileArtifactStore:
    """The filesystem artifact store at ``settings.artifact_dir``."""
    from registry.artifacts import FileArtifactStore

    return FileArtifactStore(Path(settings.artifact_dir), max_bytes=settings.artifact_max_bytes)


def approval_policy(settings: SharedSettings) -> ApprovalPolicy:
    """The approval policy the ``SHADOWLINE_POLICY_*`` settings describe."""
    from registry.policy import ApprovalPolicy

    return ApprovalPolicy(
        min_shadow_records=settings.policy_min_shadow_records,
        min_live_records=settings.policy_min_live_records,
        min_matured_frauds=settings.policy_min_matured_frauds,
        min_label_maturity=settings.policy_min_label_maturity,
        tolerance=settings.policy_tolerance,
        alpha=settings.policy_alpha,
    )


def model_registry(settings: SharedSettings, **options: Any) -> ModelRegistry:
    """A :class:`~registry.lifecycle.ModelRegistry` on the configured Redis and artifact store,
    judging approvals by the configured policy; ``options`` go to its constructor (``policy``,
    ``clock``) and win over the settings."""
    from registry.lifecycle import ModelRegistry

    options.setdefault("policy", approval_policy(settings))
    return ModelRegistry(redis_client(settings), artifact_store(settings), **options)
