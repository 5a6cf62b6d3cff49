"""The Shadowline scorer: FastAPI app, shadow sidecar, Kafka records, hot swap, admin API,
review page.

Public names (imported lazily, so ``shadowline stack status`` and the CLI stay light):
``create_app`` and ``Components`` (:mod:`service.app`), ``ServiceSettings``
(:mod:`service.settings`), ``Scorer`` (:mod:`service.scorer`), ``ModelLoader`` and
``ModelSource`` (:mod:`service.loader`), ``LoadedModel`` and ``load_model``
(:mod:`service.models`), ``ServiceError`` (:mod:`service.errors`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.app import Components, create_app
    from service.errors import ServiceError
    from service.loader import ModelLoader, ModelSource
    from service.models import LoadedModel, load_model
    from service.scorer import Scorer
    from service.settings import ServiceSettings

_MODULES = {
    "Components": "service.app",
    "create_app": "service.app",
    "ServiceError": "service.errors",
    "ModelLoader": "service.loader",
    "ModelSource": "service.loader",
    "LoadedModel": "service.models",
    "load_model": "service.models",
    "Scorer": "service.scorer",
    "ServiceSettings": "service.settings",
}
__all__ = [
    "Components",
    "LoadedModel",
    "ModelLoader",
    "ModelSource",
    "Scorer",
    "ServiceError",
    "ServiceSettings",
    "create_app",
    "load_model",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module 'service' has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULES[name]), name)
