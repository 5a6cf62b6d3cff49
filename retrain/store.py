""":class:`~retrain.registration.ModelStore` on the shared model registry (Redis + artifacts)."""

from __future__ import annotations

import redis

from registry import ModelNotFound, ModelRegistry, SharedSettings, State, artifact_store
from registry.connections import approval_policy
from registry.manifest import Manifest
from retrain.registration import ProductionModel

ACTOR = "retrain"


class RegistryStore:
    """The registry operations the pipeline performs, always as actor ``retrain``."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    @classmethod
    def connect(cls, client: redis.Redis, settings: SharedSettings) -> RegistryStore:
        """The registry on ``client`` with the artifact store the settings name."""
        return cls(
            ModelRegistry(client, artifact_store(settings), policy=approval_policy(settings))
        )

    def production(self, name: str) -> ProductionModel | None:
        version = self.registry.deployment(name).production
        if version is None:
            return None
        return ProductionModel(
            self.registry.manifest(name, version), self.registry.artifact(name, version)
        )

    def has(self, name: str, version: str) -> bool:
        try:
            self.registry.state(name, version)
        except ModelNotFound:
            return False
        return True

    def register(self, artifact: bytes, manifest: Manifest, *, reason: str) -> Manifest:
        return self.registry.register(artifact, manifest, actor=ACTOR, reason=reason)

    def shadow(self, name: str, version: str, *, rate: float, reason: str) -> None:
        if self.registry.state(name, version) is not State.SHADOW:
            self.registry.shadow(name, version, rate=rate, actor=ACTOR, reason=reason)

    def reject(self, name: str, version: str, *, reason: str) -> None:
        if self.registry.state(name, version) is not State.REJECTED:
            self.registry.reject(name, version, actor=ACTOR, reason=reason)
