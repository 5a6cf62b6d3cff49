"""Change events: what the registry publishes on :data:`EVENTS_CHANNEL` after each transition.

Pub/sub is fire-and-forget: a scorer replica that was disconnected misses messages.  So an event
is a hint to re-read :meth:`ModelRegistry.deployment`; the name's ``revision`` (which only grows)
tells a replica that polls whether it missed anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from registry.errors import RegistryError


@dataclass(frozen=True)
class RegistryEvent:
    """One state change of one version.  ``from_state`` is None for a registration."""

    name: str
    version: str
    from_state: str | None
    to_state: str
    revision: int
    actor: str
    at: str  # ISO 8601, UTC
    action: str


def decode_event(data: str | bytes) -> RegistryEvent:
    """Parse a message from :data:`EVENTS_CHANNEL`; RegistryError naming what is wrong."""
    try:
        raw = json.loads(data)
        return RegistryEvent(
            name=str(raw["name"]),
            version=str(raw["version"]),
            from_state=None if raw["from"] is None else str(raw["from"]),
            to_state=str(raw["to"]),
            revision=int(raw["revision"]),
            actor=str(raw["actor"]),
            at=str(raw["at"]),
            action=str(raw.get("action", "")),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise RegistryError(f"not a registry event: {exc!r} in {data[:200]!r}") from exc
