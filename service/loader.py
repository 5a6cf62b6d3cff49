"""Hot swap: bring the live model set in line with the registry's deployment.

:meth:`ModelLoader.reconcile` runs in a worker thread (never on the event loop).  It reads one
consistent :class:`Deployment` and, when its revision moved, loads the production version if it
does not hold it yet (artifact verified by the registry, session built, inputs checked, golden
examples replayed), then swaps in a new :class:`ModelSet` with one assignment.  Loading happens
before anything is released, so something can always serve; models no longer wanted are
dropped from the cache and freed once in-flight requests let go of them.  The previous
production version stays loaded, so a rollback is a swap, not a load.

Shadows are not loaded here.  The scorer never runs them (its sidecar process does), so it
holds a shadow as its verified bytes (:class:`~service.models.ModelBytes`) and hands them over;
the sidecar builds the session and replays the golden examples.  Building sessions here cost
the event loop in the very second a shadow set changed: the loading thread's share of the
interpreter lock and, on a busy machine, its CPU; and it kept a second copy of every shadow in
memory.  A shadow the sidecar cannot load comes back in its report (:meth:`shadow_failed`, from
the sidecar's reader thread): at the next check (``retry_due``) it is reported like any failed
load and left out of the set.  Promoting a shadow builds its session from the bytes held, before
the swap.

A version that fails to load is reported (metric, log, ``registry.note``) and not retried until
the revision changes again; production keeps the model it had, and a failed shadow is left out.
An artifact store that cannot be reached (an object store's network blip) says nothing about
the model: that load is counted and retried at the next reconcile, so a replica that starts
during the blip becomes ready once the store answers instead of waiting for a new revision.

Degraded mode.  When the registry's production cannot be loaded (at a swap, at start, or when
the registry cannot be read at start), the scorer keeps scoring with its last-known-good
production model: the one it already holds, or, when it holds none, the verified local copy in
its :class:`~service.model_cache.ModelCache` (written whenever a production model from the
registry is swapped in).  The model set then carries a :class:`~service.live.Degraded` (the
registry's version, the version served, why), which ``/readyz`` and ``shadowline_degraded``
report.  The failed version is tried again every ``retry_s`` (a store that was briefly away),
and any change of the registry's revision (promote, rollback) is followed as usual; the first
swap to the registry's production clears degraded.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from registry.errors import ArtifactStoreUnavailable, RegistryError
from registry.manifest import Manifest
from service.errors import ModelCacheError, ModelLoadError
from service.live import Degraded, LiveModels, ModelSet, ShadowSlot
from service.metrics import ServiceMetrics
from service.model_cache import ModelCache
from service.models import LoadedModel, ModelBytes, load_model

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
        cache: ModelCache | None = None,
        retry_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._live = live
        self._metrics = metrics
        self._name = name
        self._actor = actor or default_actor()
        self._load = load
        self._cache = cache
        self._retry_s = retry_s
        self._clock = clock
        self._loaded: dict[str, LoadedModel] = {}  # production, and the previous one
        self._shadows: dict[str, ModelBytes] = {}
        self._rejected: list[tuple[str, str]] = []  # (version, why) the sidecar could not load
        self._rejected_lock = threading.Lock()  # the sidecar's reader thread adds to it
        self._failed: dict[str, int] = {}  # version -> revision at which it failed
        self._why: dict[str, str] = {}  # version -> why it failed to load
        self._retry_at = 0.0
        self._revision = -1
        self._regressed = False
        self._store_down = False  # a load failed because the artifact store did not answer
        self.cache_error: str | None = None  # the last failure to write the local copy
        self._cache_miss = ""  # why the local copy could not be served

    @property
    def revision(self) -> int:
        """The registry revision the live set reflects (-1 before the first reconcile)."""
        return self._revision

    @property
    def retry_due(self) -> bool:
        """Degraded and the failed production is due to be tried again, or the sidecar could
        not load a shadow: either way, the next check reconciles."""
        return self._retry_due() or bool(self._rejected)

    def shadow_failed(self, version: str, why: str) -> None:
        """The sidecar could not load shadow ``version`` (``why``); the next reconcile reports
        it and leaves it out.  Called from the sidecar's reader thread."""
        with self._rejected_lock:
            self._rejected.append((version, why))

    def reconcile(self, *, force: bool = False) -> bool:
        """Follow the registry; True when a new model set was swapped in.

        Raises whatever the registry raises when it cannot be read (Redis down): the caller
        reports it, and the live set stays as it is.
        """
        deployment = self._source.deployment(self._name)
        revision = deployment.revision
        retry = self._retry_due()
        with self._rejected_lock:
            rejected, self._rejected = self._rejected, []
        if revision == self._revision and not force and not retry and not rejected:
            return False
        if revision < self._revision:
            # Revisions only grow: a smaller one means the registry lost its data (Redis
            # restarted without persistence).  Keep serving what we have rather than follow
            # an empty registry into a 503.
            if not self._regressed:
                log.error(
                    "registry revision went back from %d to %d for %s; keeping the loaded models",
                    self._revision,
                    revision,
                    self._name,
                )
            self._regressed = True
            return False
        self._regressed = False
        self._store_down = False
        for version, why in rejected:
            if version in deployment.shadows and self._failed.get(version) != revision:
                self._shadows.pop(version, None)
                self._fail(version, revision, "shadow", f"in its sidecar: {why}")
        current = self._live.current
        production = current.production
        wanted = deployment.production
        loaded = None
        if wanted is None:
            production = None
        else:
            loaded = self._get(wanted, revision, "production", retry=retry)
            if loaded is not None:
                production = loaded
            elif production is None:  # nothing held (just started): the local copy
                production = self._from_cache(wanted)
        slots = []
        for version, rate in deployment.shadows.items():
            shadow = self._get_shadow(version, revision)
            if shadow is not None:
                slots.append(ShadowSlot(shadow, rate))
        keep: dict[str, LoadedModel] = {}
        if production is not None:
            keep[production.version] = production
        previous = deployment.previous_production
        if previous is not None and previous in self._loaded:
            keep[previous] = self._loaded[previous]  # warm for an instant rollback
        degraded = None
        # Degraded whenever the registry's production could not be loaded from the registry,
        # even when the local copy is that very version: the registry's artifact is broken,
        # and a replica without the copy would not serve at all.
        if wanted is not None and loaded is None:
            why = self._why.get(wanted, "")
            if production is None:
                why += f"; no last-known-good model to serve: {self._cache_miss}"
            degraded = self._degraded(current, wanted, production, why)
        new = ModelSet(
            revision=revision, production=production, shadows=tuple(slots), degraded=degraded
        )
        self._live.swap(new)
        self._loaded = keep  # anything not kept is released with the last request using it
        self._shadows = {slot.model.version: slot.model for slot in slots}
        if not self._store_down:  # otherwise the next reconcile tries those loads again
            self._revision = revision
        self._report(current, new)
        if production is not None and production.version == wanted:
            self._keep_copy(production)
        return True

    def fall_back(self, reason: str) -> bool:
        """Serve the local copy when the registry cannot be read and nothing is loaded yet
        (called by the follower at start); True when a model set was swapped in."""
        current = self._live.current
        if current.production is not None:
            return False
        production = self._from_cache(None)
        if production is None:
            return False
        degraded = self._degraded(
            current, None, production, f"the registry cannot be read: {reason}"
        )
        # The revision stays unknown (-1): the first registry read is followed in full.
        new = ModelSet(
            revision=current.revision, production=production, shadows=(), degraded=degraded
        )
        self._live.swap(new)
        self._loaded = {production.version: production}
        self._shadows = {}
        self._report(current, new)
        return True

    def _degraded(
        self, current: ModelSet, wanted: str | None, served: LoadedModel | None, reason: str
    ) -> Degraded:
        served_version = served.version if served is not None else None
        before = current.degraded
        since = time.time()
        if before is not None and before.registry_version == wanted:
            since = before.since  # still the same trouble
        else:
            log.error(
                "degraded: the registry's production is %s, serving %s: %s",
                wanted,
                served_version,
                reason,
            )
        self._retry_at = self._clock() + self._retry_s
        return Degraded(
            registry_version=wanted, served_version=served_version, reason=reason, since=since
        )

    def _retry_due(self) -> bool:
        return self._live.current.degraded is not None and self._clock() >= self._retry_at

    def _from_cache(self, wanted: str | None) -> LoadedModel | None:
        """The verified local copy, loaded, or None (why: ``_cache_miss`` and the log)."""
        if self._cache is None:
            self._cache_miss = "the model cache is turned off (SHADOWLINE_MODEL_CACHE_DIR)"
            return None
        try:
            manifest, artifact = self._cache.load()
            if manifest.name != self._name:
                raise ModelCacheError(
                    self._cache.root, f"it holds {manifest.ref}, not a version of {self._name}"
                )
            model = self._load(manifest, artifact)
        except (ModelCacheError, ModelLoadError) as exc:
            self._cache_miss = str(exc)
            log.error(
                "no last-known-good model to serve instead of %s:%s: %s", self._name, wanted, exc
            )
            return None
        log.warning(
            "serving the local copy of %s (sha256 %s) instead of %s:%s",
            model.ref,
            model.sha256[:12],
            self._name,
            wanted,
        )
        return model

    def _keep_copy(self, model: LoadedModel) -> None:
        """Write the production model just swapped in as the last-known-good copy."""
        if self._cache is None:
            return
        try:
            if self._cache.save(model.manifest, model.artifact):
                log.info("kept %s as the last-known-good copy", model.ref)
            self.cache_error = None
        except ModelCacheError as exc:  # scoring goes on; /readyz shows it
            self.cache_error = str(exc)
            log.error("%s", exc)

    def _get(
        self, version: str, revision: int, role: str, *, retry: bool = False
    ) -> LoadedModel | None:
        """``version`` loaded: held already, built from the bytes held for it as a shadow (a
        promotion), or fetched from the registry; None when it fails (reported)."""
        cached = self._loaded.get(version)
        if cached is not None:  # versions are immutable: same version, same artifact
            return cached
        if self._failed.get(version) == revision and not retry:
            return None
        held = self._shadows.get(version)
        try:
            if held is not None:
                model = self._load(held.manifest, held.artifact)
            else:
                manifest = self._source.manifest(self._name, version)
                model = self._load(manifest, self._source.artifact(self._name, version))
        except ArtifactStoreUnavailable as exc:
            self._unavailable(version, role, exc)
            return None
        except (ModelLoadError, RegistryError) as exc:
            self._fail(version, revision, role, str(exc))
            return None
        self._failed.pop(version, None)
        self._why.pop(version, None)
        self._loaded[version] = model
        log.info("loaded %s (sha256 %s) as %s", model.ref, model.sha256[:12], role)
        return model

    def _get_shadow(self, version: str, revision: int) -> ModelBytes | None:
        """The verified bytes of shadow ``version`` (the sidecar loads them); None when they
        cannot be had (reported)."""
        if self._failed.get(version) == revision:  # the sidecar could not load it, or a read
            return None
        held = self._shadows.get(version)
        if held is not None:
            return held
        loaded = self._loaded.get(version)
        if loaded is not None:  # a production version, now in shadow
            return ModelBytes.of(loaded)
        try:
            manifest = self._source.manifest(self._name, version)
            held = ModelBytes(manifest, self._source.artifact(self._name, version), time.time())
        except ArtifactStoreUnavailable as exc:
            self._unavailable(version, "shadow", exc)
            return None
        except RegistryError as exc:
            self._fail(version, revision, "shadow", str(exc))
            return None
        self._failed.pop(version, None)
        self._why.pop(version, None)
        log.info("fetched %s (sha256 %s) for the sidecar, as shadow", held.ref, held.sha256[:12])
        return held

    def _unavailable(self, version: str, role: str, exc: ArtifactStoreUnavailable) -> None:
        self._store_down = True
        self._metrics.swap_failures.labels(role).inc()
        log.warning("could not load %s:%s as %s, retrying: %s", self._name, version, role, exc)

    def _fail(self, version: str, revision: int, role: str, reason: str) -> None:
        """Report that ``version`` cannot be loaded as ``role`` (once per revision: metric,
        log, registry note); it is not tried again until the revision moves."""
        message = f"{self._actor} could not load {self._name}:{version} as {role}: {reason}"
        self._why[version] = message
        if self._failed.get(version) == revision:  # a retry: reported the first time
            log.warning("%s (tried again)", message)
            return
        self._failed[version] = revision
        self._metrics.swap_failures.labels(role).inc()
        log.error("%s; keeping the current models", message)
        try:
            self._source.note(self._name, version, message, actor=self._actor)
        except Exception:  # the note is best effort; the metric and log already tell
            log.exception("could not record the failed load in the registry")

    def _report(self, old: ModelSet, new: ModelSet) -> None:
        metrics = self._metrics
        if old.production is not new.production:
            metrics.swaps.labels("production").inc()
            version = new.production.version if new.production else None
            log.info("production is now %s:%s", self._name, version)
        if old.shadow_versions != new.shadow_versions:
            metrics.swaps.labels("shadow").inc()
        metrics.degraded.set(0 if new.degraded is None else 1)
        metrics.model_info.clear()
        if new.production is not None:
            model = new.production
            metrics.model_info.labels("production", model.version, model.sha256).set(
                model.loaded_at
            )
        for slot in new.shadows:
            shadow = slot.model
            metrics.model_info.labels("shadow", shadow.version, shadow.sha256).set(shadow.loaded_at)
        metrics.set_production_created(
            None
            if new.production is None
            else (new.production.created_at or new.production.loaded_at)
        )
