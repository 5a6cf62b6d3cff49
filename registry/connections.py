"""Client construction from settings: the single place a Redis DSN is parsed."""

from __future__ import annotations

import redis

from registry.config import SharedSettings


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
