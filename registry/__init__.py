"""Shadowline's shared layer: model contract, artifact store, lifecycle in Redis, audit log.

``service`` and ``retrain`` both import from here and never from each other.
"""

from registry.artifacts import ArtifactStore, FileArtifactStore
from registry.audit import AuditEntry, AuditVerification
from registry.config import Environment, SettingsError, SharedSettings, load_settings
from registry.connections import artifact_store, model_registry, redis_client
from registry.constants import EVENTS_CHANNEL
from registry.errors import (
    AlreadyRegistered,
    ArtifactError,
    ArtifactNotFound,
    ArtifactRefused,
    ArtifactTooLarge,
    ChecksumMismatch,
    Contention,
    DraftError,
    IllegalTransition,
    InvalidRequest,
    ManifestError,
    ModelNotFound,
    PolicyViolation,
    RegistryError,
    ValidationFailed,
)
from registry.events import RegistryEvent, decode_event
from registry.evidence import Interval, MetricEstimate, ShadowEvidence
from registry.lifecycle import (
    Deployment,
    ModelRegistry,
    ModelStatus,
    State,
    allowed_moves,
)
from registry.policy import ApprovalPolicy
from registry.stamps import Stamp, Stamps
from registry.validation import PreparedModel, prepare_model, validate_model

__all__ = [
    "EVENTS_CHANNEL",
    "AlreadyRegistered",
    "ApprovalPolicy",
    "ArtifactError",
    "ArtifactNotFound",
    "ArtifactRefused",
    "ArtifactStore",
    "ArtifactTooLarge",
    "AuditEntry",
    "AuditVerification",
    "ChecksumMismatch",
    "Contention",
    "Deployment",
    "DraftError",
    "Environment",
    "FileArtifactStore",
    "IllegalTransition",
    "Interval",
    "InvalidRequest",
    "ManifestError",
    "MetricEstimate",
    "ModelNotFound",
    "ModelRegistry",
    "ModelStatus",
    "PolicyViolation",
    "PreparedModel",
    "RegistryError",
    "RegistryEvent",
    "SettingsError",
    "ShadowEvidence",
    "SharedSettings",
    "Stamp",
    "Stamps",
    "State",
    "ValidationFailed",
    "allowed_moves",
    "artifact_store",
    "decode_event",
    "load_settings",
    "model_registry",
    "prepare_model",
    "redis_client",
    "validate_model",
]
