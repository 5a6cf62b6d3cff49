"""Shared type aliases and small Protocols of the registry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware.  Injected so tests control time."""


def utc_now() -> datetime:
    """The default :data:`Clock`."""
    return datetime.now(UTC)
