"""Registry moves several test packages share: versions with evidence the default approval
policy accepts (so an approval is not forced), and a production version to start from."""

from __future__ import annotations

from registry import ModelRegistry, ShadowEvidence
from registry.manifest import InputSchema, Manifest
from tests.factories import DEFAULT_SCHEMA, logistic_model, make_evidence, make_manifest

NAME = "fraud"


def register(
    registry: ModelRegistry,
    version: str,
    bias: float = -2.0,
    *,
    actor: str = "test",
    schema: InputSchema = DEFAULT_SCHEMA,
) -> Manifest:
    """Register a real logistic model over ``schema`` as ``version`` (another bias: other
    scores)."""
    model = logistic_model(schema, bias=bias)
    manifest = make_manifest(model, version=version, schema=schema)
    return registry.register(model, manifest, actor=actor)


def passing_evidence(production: str | None) -> ShadowEvidence:
    """Shadow evidence the default ApprovalPolicy accepts against ``production``."""
    return make_evidence(production, challenger=0.62, production_value=0.60, low=0.005)


def approvable(registry: ModelRegistry, version: str, bias: float = -2.0) -> None:
    """Register ``version``, put it in shadow and record evidence against today's production,
    so approving it without force passes the policy."""
    register(registry, version, bias)
    registry.shadow(NAME, version, rate=1.0, actor="retrain")
    production = registry.deployment(NAME).production
    registry.record_evidence(NAME, version, passing_evidence(production))


def production(
    registry: ModelRegistry,
    version: str,
    bias: float = -2.0,
    *,
    schema: InputSchema = DEFAULT_SCHEMA,
) -> None:
    """Make ``version`` production by hand (forced approval: no evidence needed)."""
    register(registry, version, bias, schema=schema)
    registry.approve(NAME, version, actor="test", reason="setup", force=True)
    registry.promote(NAME, version, actor="test")
