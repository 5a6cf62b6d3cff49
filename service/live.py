"""The live model set: what the request path and the sidecar's hand-over read.

A :class:`ModelSet` is immutable.  Changing production or the shadows means building a new set
(production loaded and warmed beforehand; a shadow is its verified bytes, which the sidecar
loads and runs) and storing it with one reference assignment, which is
atomic in Python: a request reads ``live.current`` once and scores with the model it got, even
if a swap happens while it runs.  The previous set is released when the last request holding it
finishes; its sessions go with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from registry.manifest import Manifest
from service.models import LoadedModel, ModelBytes


class ShadowModel(Protocol):
    """What a shadow slot needs of its model: a :class:`~service.models.ModelBytes` in the
    scorer (it hands the version to the sidecar), a :class:`~service.models.LoadedModel` in
    the sidecar (which runs it)."""

    @property
    def manifest(self) -> Manifest: ...
    @property
    def artifact(self) -> bytes: ...
    @property
    def version(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def loaded_at(self) -> float: ...


M = TypeVar("M", bound=ShadowModel, covariant=True)


@dataclass(frozen=True, slots=True)
class ShadowSlot(Generic[M]):
    """A shadow model and the fraction of requests it scores, in (0, 1]."""

    model: M
    rate: float


@dataclass(frozen=True, slots=True)
class Degraded:
    """Why this scorer serves another production version than the registry names.

    ``registry_version`` is None when the registry could not be read at all; ``served_version``
    is None when nothing could be served (no last-known-good copy either).  ``since`` is the
    unix time the scorer became degraded.
    """

    registry_version: str | None
    served_version: str | None
    reason: str
    since: float

    def as_dict(self) -> dict[str, str | float | None]:
        return {
            "registry_version": self.registry_version,
            "served_version": self.served_version,
            "reason": self.reason,
            "since": self.since,
        }


@dataclass(frozen=True, slots=True)
class ModelSet:
    """One consistent view: the registry revision it reflects, production and the shadows,
    and, when production is not the registry's, why (``degraded``)."""

    revision: int = -1
    production: LoadedModel | None = None
    shadows: tuple[ShadowSlot[ModelBytes], ...] = ()
    degraded: Degraded | None = None

    @property
    def shadow_versions(self) -> dict[str, float]:
        return {slot.model.version: slot.rate for slot in self.shadows}


class LiveModels:
    """Holds the current :class:`ModelSet`; ``swap`` replaces it in one assignment."""

    __slots__ = ("current", "warmed")

    def __init__(self, initial: ModelSet | None = None) -> None:
        self.current = initial if initial is not None else ModelSet()
        # True once a production model has been loaded and warmed (readiness).
        self.warmed = self.current.production is not None

    def swap(self, new: ModelSet) -> ModelSet:
        """Make ``new`` current; returns the set it replaced."""
        old, self.current = self.current, new
        self.warmed = new.production is not None
        return old
