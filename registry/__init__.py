"""Shadowline's shared layer: model contract, artifact store, lifecycle in Redis, audit log.

``service`` and ``retrain`` both import from here and never from each other.
"""

from registry.config import Environment, SettingsError, SharedSettings, load_settings
from registry.connections import redis_client

__all__ = ["Environment", "SettingsError", "SharedSettings", "load_settings", "redis_client"]
