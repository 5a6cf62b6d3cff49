"""The admin API under ``/admin``: the registry's lifecycle moves, behind a bearer token.

Every route delegates to :class:`registry.ModelRegistry`, so the same rules (policy, allowed
moves) and audit entries apply as from the CLI.  Routes are plain ``def``: FastAPI runs them in
its thread pool, so the registry's synchronous Redis calls never block the event loop.  The
token check is one dependency, applied to the whole router; registry errors become 404/409/422
in the app's one error handler (:func:`service.http.error_status`).
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, SecretStr

from registry import Deployment, ModelRegistry
from service.errors import Forbidden, Unauthorized
from service.live import LiveModels

_bearer = HTTPBearer(auto_error=False, description="SHADOWLINE_ADMIN_TOKEN")
Actor = Annotated[str, Field(min_length=1, max_length=128, description="Who acts (audit log).")]
Reason = Annotated[str, Field(max_length=2000, description="Why (audit log).")]


class Change(BaseModel):
    actor: Actor
    reason: Reason = ""


class ShadowChange(Change):
    rate: Annotated[float, Field(gt=0, le=1, description="Share of requests it scores.")]


class Approval(BaseModel):
    actor: Actor
    reason: Annotated[str, Field(min_length=1, max_length=2000)]
    force: bool = Field(default=False, description="Approve despite the policy (say why).")


class ModelView(BaseModel):
    version: str
    state: str
    sha256: str
    created_at: datetime | None
    registered_at: datetime
    shadow_rate: float | None


class DeploymentView(BaseModel):
    name: str
    revision: int
    production: str | None
    previous_production: str | None
    shadows: dict[str, float]


class LoadedView(BaseModel):
    revision: int
    production: str | None
    shadows: dict[str, float]


class ModelsView(BaseModel):
    name: str
    deployment: DeploymentView
    loaded: LoadedView = Field(description="What this scorer process has loaded and serves.")
    models: list[ModelView]


def _deployment(deployment: Deployment) -> DeploymentView:
    return DeploymentView(
        name=deployment.name,
        revision=deployment.revision,
        production=deployment.production,
        previous_production=deployment.previous_production,
        shadows=dict(deployment.shadows),
    )


def admin_router(
    registry: ModelRegistry, name: str, token: SecretStr, live: LiveModels
) -> APIRouter:
    """The ``/admin`` routes for model ``name``, guarded by ``token``."""
    expected = token.get_secret_value().encode()

    def require_admin(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if credentials is None:
            raise Unauthorized()
        # Constant-time comparison: response timing must not reveal how much of a guess matched.
        if not hmac.compare_digest(credentials.credentials.encode(), expected):
            raise Forbidden()

    router = APIRouter(
        prefix="/admin",
        tags=["admin"],
        dependencies=[Depends(require_admin)],
        responses={
            401: {"description": "No bearer token."},
            403: {"description": "Wrong bearer token."},
            404: {"description": "No such model version."},
            409: {"description": "The move is not allowed now (state, policy, contention)."},
        },
    )

    @router.get("/models")
    def list_models() -> ModelsView:
        """Every version of the model with its state, the registry's deployment, and what this
        scorer has loaded."""
        current = live.current
        return ModelsView(
            name=name,
            deployment=_deployment(registry.deployment(name)),
            loaded=LoadedView(
                revision=current.revision,
                production=current.production.version if current.production else None,
                shadows=current.shadow_versions,
            ),
            models=[
                ModelView(
                    version=s.version,
                    state=s.state.value,
                    sha256=s.sha256,
                    created_at=s.created_at,
                    registered_at=s.registered_at,
                    shadow_rate=s.shadow_rate,
                )
                for s in registry.list(name)
            ],
        )

    @router.post("/models/{version}/shadow")
    def shadow(version: str, change: ShadowChange) -> DeploymentView:
        """Put a registered version in shadow with a sampling rate."""
        registry.shadow(name, version, rate=change.rate, actor=change.actor, reason=change.reason)
        return _deployment(registry.deployment(name))

    @router.post("/models/{version}/unshadow")
    def unshadow(version: str, change: Change) -> DeploymentView:
        """Take a version out of shadow."""
        registry.unshadow(name, version, actor=change.actor, reason=change.reason)
        return _deployment(registry.deployment(name))

    @router.post("/models/{version}/approve")
    def approve(version: str, approval: Approval) -> DeploymentView:
        """Approve a shadow version for production (the approval policy applies unless
        ``force``; a violation is 409 naming each rule)."""
        registry.approve(
            name, version, actor=approval.actor, reason=approval.reason, force=approval.force
        )
        return _deployment(registry.deployment(name))

    @router.post("/models/{version}/promote")
    def promote(version: str, change: Change) -> DeploymentView:
        """Make an approved version production; scorers swap to it within seconds."""
        registry.promote(name, version, actor=change.actor, reason=change.reason)
        return _deployment(registry.deployment(name))

    @router.post("/rollback")
    def rollback(change: Change) -> DeploymentView:
        """Return production to the previous production version."""
        registry.rollback(name, actor=change.actor, reason=change.reason)
        return _deployment(registry.deployment(name))

    return router
