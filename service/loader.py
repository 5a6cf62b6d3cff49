"""Hot swap: bring the live model set in line with the registry's deployment.

:meth:`ModelLoader.reconcile` runs in a worker thread (never on the event loop).  It reads one
consistent :class:`Deployment` and, when its revision moved, loads every version it does not
hold yet (artifact verified by the registry, session built, inputs checked, golden examples
replayed), then swaps in a new :class:`ModelSet` with one assignment.  Loading happens before
anything is released, so something can always serve; models no longer wanted are dropped from
the cache and freed once in-flight requests let go of them.  The previous production version
stays loaded, so a rollback is a swap, not a load.

A version that fails to load is reported (metric, log, ``registry.note``) and not retried until
the revision changes again; production keeps the model it had, and a failed shadow is left out.
An artifact store that cannot be reached (an object store's network blip) says nothing about
the model: that load is counted and retried at the next reconcile, so a replica that starts
during the blip becomes ready once the store answers instead of waiting for a new revision.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Mapping
from typing import Protocol

from registry.errors import ArtifactStoreUnavailable, RegistryError
from registry.manifest import Manifest
from service.errors import ModelLoadError
from service.live import LiveModels, ModelSet, ShadowSlot
from service.metrics import ServiceMetrics
from service.models import LoadedModel, load_model

log = logging.getLogger(__name__)


class DeploymentView(Protocol):
    """What the loader reads of ``registry.Deployment``."""

    @property
    def revision(self) -> int: ...
    @property
    def production(self) -> str | None: ...
    @property
    def previous_production(self) -> str | None: ...
    @property
    def shadows(self) -> Mapping[str, float]: ...


class ModelSource(Protocol):
    """The part of ``registry.ModelRegistry`` the scorer uses to load models."""

    def deployment(self, name: str) -> DeploymentView: ...
    def manifest(self, name: str, version: str) -> Manifest: ...
    def artifact(self, name: str, version: str) -> bytes: ...
    def note(self, name: str, version: str, message: str, *, actor: str) -> None: ...


def default_actor() -> str:
    """How this scorer names itself in registry notes."""
    return f"scorer@{socket.gethostname()}"


class ModelLoader:
    """Loads and swaps the models of one model name (see the module docstring)."""

    def __init__(
        self,
        source: ModelSource,
        live: LiveModels,
        metrics: ServiceMetrics,
        *,
        name: str,
        actor: str | None = None,
        load: Callable[[Manifest, bytes], LoadedModel] = load_model,
    ) -> None:
        self._source = source
        self._live = live
        self._metrics = metrics
        self._name = name
        self._actor = actor or default_actor()
        self._load = load
        self._loaded: dict[str, LoadedModel] = {}
        self._failed: dict[str, int] = {}  # version -> revision at which it failed
        self._revision = -1
        self._regressed = False
        self._store_down = False  # a load failed because the artifact store did not answer

    @property
    def revision(self) -> int:
        """The registry revision the live set reflects (-1 before the first reconcile)."""
        return self._revision

    def reconcile(self, *, force: bool = False) -> bool:
        """Follow the registry; True when a new model set was swapped in.

        Raises whatever the registry raises when it cannot be read (Redis down): the caller
        reports it, and the live set stays as it is.
        """
        deployment = self._source.deployment(self._name)
        revision = deployment.revision
        if revision == self._revision and not force:
            return False
        if revision < self._revision:
            # Revisions only grow: a smaller one means the registry lost its data (Redis
            # restarted without persistence).  Keep serving what we have rather than follow
            # an empty registry into a 503.
            if not self._regressed:
                log.error("registry revision went back from %d to %d for %s; keeping the "
                          "loaded models", self._revision, revision, self._name)  # fmt: skip
            self._regressed = True
            return False
        self._regressed = False
        self._store_down = False
        current = self._live.current
        production = current.production
        if deployment.production is None:
            production = None
        else:
            loaded = self._get(deployment.production, revision, "production")
            if loaded is not None:
                production = loaded
        slots = []
        for version, rate in deployment.shadows.items():
            shadow = self._get(version, revision, "shadow")
            if shadow is not None:
                slots.append(ShadowSlot(shadow, rate))
        keep = {slot.model.version: slot.model for slot in slots}
        if production is not None:
            keep[production.version] = production
        previous = deployment.previous_production
        if previous is not None and previous in self._loaded:
            keep[previous] = self._loaded[previous]  # warm for an instant rollback
        new = ModelSet(revision, production, tuple(slots))
        self._live.swap(new)
        self._loaded = keep  # anything not kept is released with the last request using it
        if not self._store_down:  # otherwise the next reconcile tries those loads again
            self._revision = revision
        self._report(current, new)
        return True

    def _get(self, version: str, revision: int, role: str) -> LoadedModel | None:
        cached = self._loaded.get(version)
        if cached is not None:  # versions are immutable: same version, same artifact
            return cached
        if self._failed.get(version) == revision:
            return None
        try:
            manifest = self._source.manifest(self._name, version)
            model = self._load(manifest, self._source.artifact(self._name, version))
        except ArtifactStoreUnavailable as exc:
            self._store_down = True
            self._metrics.swap_failures.labels(role).inc()
            log.warning("could not load %s:%s as %s, retrying: %s", self._name, version, role, exc)
            return None
        except (ModelLoadError, RegistryError) as exc:
            self._failed[version] = revision
            self._metrics.swap_failures.labels(role).inc()
            message = f"{self._actor} could not load {self._name}:{version} as {role}: {exc}"
            log.error("%s; keeping the current models", message)
            try:
                self._source.note(self._name, version, message, actor=self._actor)
            except Exception:  # the note is best effort; the metric and log already tell
                log.exception("could not record the failed load in the registry")
            return None
        self._loaded[version] = model
        log.info("loaded %s (sha256 %s) as %s", model.ref, model.sha256[:12], role)
        return model

    def _report(self, old: ModelSet, new: ModelSet) -> None:
        metrics = self._metrics
        if old.production is not new.production:
            metrics.swaps.labels("production").inc()
            version = new.production.version if new.production else None
            log.info("production is now %s:%s", self._name, version)
        if old.shadow_versions != new.shadow_versions:
            metrics.swaps.labels("shadow").inc()
        metrics.model_info.clear()
        if new.production is not None:
            model = new.production
            metrics.model_info.labels("production", model.version, model.sha256).set(
                model.loaded_at
            )
        for slot in new.shadows:
            model = slot.model
            metrics.model_info.labels("shadow", model.version, model.sha256).set(model.loaded_at)
        metrics.set_production_created(
            None
            if new.production is None
            else (new.production.created_at or new.production.loaded_at)
        )
