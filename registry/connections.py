"""Client construction from settings: the single place a Redis DSN is parsed, the Kafka client
options are built and the artifact store is chosen.

Redis: ``SHADOWLINE_REDIS_URL`` carries the password and TLS (``rediss://:PASSWORD@host:6379/0``;
query options such as ``?ssl_ca_certs=/etc/redis-ca/ca.crt`` go to redis-py as they are), and
both the synchronous and the asyncio client are built here from it, with the same timeouts.
Kafka: :func:`kafka_options` gives every kafka-python client (producer, consumer, admin) the
same security settings.  Artifacts: :func:`artifact_store` picks the backend; boto3 is only
imported when the S3 backend is selected, so the scorer's start-up does not pay for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio as aioredis

from registry.config import SharedSettings

if TYPE_CHECKING:
    from registry.artifacts import ArtifactStore
    from registry.lifecycle import ModelRegistry
    from registry.policy import ApprovalPolicy


def redis_client(settings: SharedSettings, *, timeout_s: float = 2.0) -> redis.Redis:
    """A synchronous Redis client for ``settings.redis_url`` (responses decoded as str).

    Nothing is sent until the first command; connection errors surface there as
    ``redis.ConnectionError``, a wrong password as ``redis.AuthenticationError``.
    """
    return redis.Redis.from_url(
        settings.redis_url.get_secret_value(),
        decode_responses=True,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )


def async_redis_client(settings: SharedSettings, *, timeout_s: float = 2.0) -> aioredis.Redis:
    """The asyncio client on the same DSN (the scorer's registry follower): bytes responses, a
    connect timeout only, because a pub/sub read blocks for as long as nothing happens."""
    return aioredis.Redis.from_url(
        settings.redis_url.get_secret_value(), socket_connect_timeout=timeout_s
    )


def kafka_options(settings: SharedSettings) -> dict[str, Any]:
    """Security keyword arguments for every kafka-python client (``KafkaProducer``,
    ``KafkaConsumer``, ``KafkaAdminClient``); empty for PLAINTEXT, so local clients are
    unchanged.  The caller adds ``bootstrap_servers`` and its own tuning.

    The result holds the SASL password as a plain string (kafka-python takes nothing else):
    keep it out of logs and reprs (``service.producer.ProducerConfig`` hides it).
    """
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol.endswith("SSL"):
        options["ssl_check_hostname"] = True
        if settings.kafka_ssl_cafile:
            options["ssl_cafile"] = settings.kafka_ssl_cafile
        if settings.kafka_ssl_certfile:
            options["ssl_certfile"] = settings.kafka_ssl_certfile
            options["ssl_keyfile"] = settings.kafka_ssl_keyfile
    if protocol.startswith("SASL_"):
        # kafka-python takes the SCRAM credentials under the sasl_plain_* names too.
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def artifact_store(settings: SharedSettings) -> ArtifactStore:
    """The configured artifact store: files under ``settings.artifact_dir`` (the default) or
    the S3-compatible bucket ``settings.artifact_s3_bucket``."""
    if settings.artifact_backend == "s3":
        from registry.s3 import S3ArtifactStore, s3_client

        return S3ArtifactStore(
            s3_client(
                endpoint_url=settings.artifact_s3_endpoint_url,
                region=settings.artifact_s3_region,
            ),
            bucket=settings.artifact_s3_bucket,
            prefix=settings.artifact_s3_prefix,
            max_bytes=settings.artifact_max_bytes,
        )
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
