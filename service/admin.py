"""The admin API under ``/admin``: the registry's lifecycle moves, behind a bearer token.

Every route delegates to :class:`registry.ModelRegistry`, so the same rules (policy, allowed
moves) and audit entries apply as from the CLI.  Routes are plain ``def``: FastAPI runs them in
its thread pool, so the registry's synchronous Redis calls never block the event loop.  The
token is checked before any body is read by :class:`service.auth.AdminGuard`, and again by one
dependency applied to the whole router; registry errors become 404/409/422 in the app's one
error handler (:func:`service.http.error_response`).

``GET /admin/models/{version}`` gathers what a reviewer weighs before a move (the review page,
:mod:`service.review`, shows it): the recorded shadow evidence, live and from a replay, whole
(every number behind the verdict: intervals, decision bound, maturity, label-free signals,
control, report), the approval policy's rules and what they say about it right now, and the
version's latest audit entries.  Every move answers with the deployment after it and a
one-line ``message`` saying what happened.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, SecretStr, computed_field

from registry import (
    ApprovalPolicy,
    AuditEntry,
    Deployment,
    ModelNotFound,
    ModelRegistry,
    ShadowEvidence,
)
from service.auth import check_token
from service.live import LiveModels
from service.schemas import error_responses

_bearer = HTTPBearer(auto_error=False, description="SHADOWLINE_ADMIN_TOKEN")
# The registry refuses an actor or a reason that is only blanks: "\S" documents that.
Actor = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"\S", description="Who acts (audit log).")
]
Reason = Annotated[str, Field(max_length=2000, description="Why (audit log).")]
VersionPath = Annotated[str, Path(description="The model version, as registered.", examples=["v8"])]


class Change(BaseModel):
    """The body of a move: who makes it and why (both go to the audit log)."""

    actor: Actor
    reason: Reason = ""


class ShadowChange(Change):
    """The body of ``shadow``: who, why, and the share of requests the version scores."""

    rate: Annotated[
        float, Field(gt=0, le=1, allow_inf_nan=False, description="Share of requests it scores.")
    ]


class Approval(BaseModel):
    """The body of ``approve``: who, why (required), and whether to force it past the
    approval policy."""

    actor: Actor
    reason: Annotated[str, Field(min_length=1, max_length=2000, pattern=r"\S")]
    force: bool = Field(default=False, description="Approve despite the policy (say why).")


class ModelView(BaseModel):
    """One version of the model: its lifecycle state and artifact."""

    version: str
    state: str
    sha256: str
    created_at: datetime | None
    registered_at: datetime
    shadow_rate: float | None


class DeploymentView(BaseModel):
    """The registry's deployment of the model: production, the rollback target and the
    shadows with their rates; ``revision`` grows with every change."""

    name: str
    revision: int
    production: str | None
    previous_production: str | None
    shadows: dict[str, float]


class ChangeView(DeploymentView):
    """The deployment after a move, and what the move did."""

    message: str = Field(description="What the move did, in one line.")


class EvidenceView(ShadowEvidence):
    """A recorded :class:`registry.ShadowEvidence` as stored (``registry/evidence.py`` says
    what each number means), plus its ``regression``: how much worse than production the
    challenger is on ``metric`` (negative = better, None = no production value)."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def regression(self) -> float | None:
        return super().regression


class AuditView(BaseModel):
    """One entry of the model's hash-chained audit log."""

    seq: int
    at: datetime
    actor: str
    action: str
    from_state: str | None
    to_state: str
    reason: str
    evidence: str
    detail: str


class ModelDetail(ModelView):
    """One version, with what a reviewer weighs before moving it."""

    evidence: EvidenceView | None = Field(description="The evidence from live shadow traffic.")
    replay_evidence: EvidenceView | None = Field(
        description="The evidence from a replay of archived traffic."
    )
    policy: ApprovalPolicy = Field(description="The rules approving without force must meet.")
    policy_violations: list[str] = Field(
        description="What approving without force would be refused for now (empty: allowed)."
    )
    audit: list[AuditView] = Field(description="The version's latest audit entries, newest first.")


class LoadedView(BaseModel):
    """What this scorer process has loaded and serves."""

    revision: int
    production: str | None
    shadows: dict[str, float]


class ModelsView(BaseModel):
    """Every version of the model, the registry's deployment and what this scorer serves."""

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


def _evidence(evidence: ShadowEvidence) -> EvidenceView:
    return EvidenceView(**evidence.model_dump(exclude={"details"}))


def _audit(entry: AuditEntry) -> AuditView:
    return AuditView(
        seq=entry.seq,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        from_state=entry.from_state,
        to_state=entry.to_state,
        reason=entry.reason,
        evidence=entry.evidence,
        detail=entry.detail,
    )


def _changed(deployment: Deployment, message: str) -> ChangeView:
    return ChangeView(**_deployment(deployment).model_dump(), message=message)


def admin_router(
    registry: ModelRegistry, name: str, token: SecretStr, live: LiveModels
) -> APIRouter:
    """The ``/admin`` routes for model ``name``, guarded by ``token``."""

    def require_admin(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        # service.auth.AdminGuard has checked already, before the body was read; this keeps
        # the routes guarded on their own and documents the bearer scheme in OpenAPI.
        check_token(None if credentials is None else credentials.credentials, token)

    router = APIRouter(
        prefix="/admin",
        tags=["admin"],
        dependencies=[Depends(require_admin)],
        responses=error_responses(401, 403, 413, 503),
    )
    moves = error_responses(400, 404, 409, 422)

    @router.get("/models", summary="List the model's versions")
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

    @router.get(
        "/models/{version}", summary="One version for review", responses=error_responses(404, 422)
    )
    def model_detail(
        version: VersionPath,
        audit: Annotated[
            int,
            Query(ge=0, le=100, description="How many of its latest audit entries.", examples=[5]),
        ] = 5,
    ) -> ModelDetail:
        """One version for review: its state, its shadow evidence, what the approval policy
        says about that evidence now, and its latest audit entries (newest first)."""
        status = next((s for s in registry.list(name) if s.version == version), None)
        if status is None:
            raise ModelNotFound(name, version)
        evidence = registry.evidence(name, version)
        replay = registry.evidence(name, version, "replay")
        # The whole log is read and filtered: it grows by a handful of entries a version.
        entries = [e for e in registry.audit(name) if e.version == version]
        return ModelDetail(
            version=status.version,
            state=status.state.value,
            sha256=status.sha256,
            created_at=status.created_at,
            registered_at=status.registered_at,
            shadow_rate=status.shadow_rate,
            evidence=_evidence(evidence) if evidence else None,
            replay_evidence=_evidence(replay) if replay else None,
            policy=registry.policy,
            policy_violations=registry.approval_violations(name, version),
            audit=[_audit(e) for e in reversed(entries[-audit:])] if audit else [],
        )

    @router.post("/models/{version}/shadow", summary="Shadow a version", responses=moves)
    def shadow(version: VersionPath, change: ShadowChange) -> ChangeView:
        """Put a registered version in shadow with a sampling rate."""
        registry.shadow(name, version, rate=change.rate, actor=change.actor, reason=change.reason)
        return _changed(
            registry.deployment(name), f"{name}:{version} is in shadow at rate {change.rate:g}"
        )

    @router.post(
        "/models/{version}/unshadow", summary="Take a version out of shadow", responses=moves
    )
    def unshadow(version: VersionPath, change: Change) -> ChangeView:
        """Take a version out of shadow."""
        registry.unshadow(name, version, actor=change.actor, reason=change.reason)
        return _changed(registry.deployment(name), f"{name}:{version} left shadow")

    @router.post("/models/{version}/approve", summary="Approve a version", responses=moves)
    def approve(version: VersionPath, approval: Approval) -> ChangeView:
        """Approve a shadow version for production (the approval policy applies unless
        ``force``; a violation is 409 naming each rule)."""
        registry.approve(
            name, version, actor=approval.actor, reason=approval.reason, force=approval.force
        )
        how = " (forced)" if approval.force else ""
        return _changed(registry.deployment(name), f"{name}:{version} is approved{how}")

    @router.post("/models/{version}/promote", summary="Promote a version", responses=moves)
    def promote(version: VersionPath, change: Change) -> ChangeView:
        """Make an approved version production; scorers swap to it within seconds."""
        registry.promote(name, version, actor=change.actor, reason=change.reason)
        return _changed(
            registry.deployment(name),
            f"{name}:{version} is production; scorers swap to it within seconds",
        )

    @router.post("/rollback", summary="Roll production back", responses=moves)
    def rollback(change: Change) -> ChangeView:
        """Return production to the previous production version."""
        target = registry.rollback(name, actor=change.actor, reason=change.reason)
        return _changed(
            registry.deployment(name), f"rolled back: {name}:{target} is production again"
        )

    return router
