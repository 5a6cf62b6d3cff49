"""Settings of the ``shadowline`` command itself (local stack, demo)."""

from __future__ import annotations

from pydantic import Field

from registry.config import SharedSettings

STATE_DIR = ".shadowline"


class StackSettings(SharedSettings):
    """``shadowline stack``: ports 0 mean "pick a free port on 127.0.0.1"."""

    redis_port: int = Field(default=0, ge=0, le=65535)
    kafka_port: int = Field(default=0, ge=0, le=65535)
    redis_server_bin: str = "redis-server"
    stack_timeout_s: float = Field(default=20.0, gt=0)
