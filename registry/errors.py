"""Every error the registry raises derives from :class:`RegistryError`.

Messages are built from arguments so they name what is wrong; tests assert the exact text.
"""

from __future__ import annotations

from collections.abc import Sequence


class RegistryError(Exception):
    """Base class of the registry's errors."""


class ManifestError(RegistryError):
    """A manifest (or a row checked against its input schema) is not valid."""


class InvalidRequest(RegistryError):
    """An argument of a registry call is not acceptable (empty reason, rate out of range...)."""


class ModelNotFound(RegistryError):
    """No such model name, or no such version of it."""

    def __init__(self, name: str, version: str | None = None) -> None:
        self.name, self.version = name, version
        if version is None:
            super().__init__(f"no model named {name} is registered")
        else:
            super().__init__(f"model {name}:{version} is not registered")


class AlreadyRegistered(RegistryError):
    """The version exists with a different artifact; versions are immutable."""

    def __init__(self, ref: str, existing_sha: str, new_sha: str) -> None:
        super().__init__(
            f"model {ref} is already registered with artifact {existing_sha[:12]}; "
            f"this artifact is {new_sha[:12]} (register it under a new version)"
        )


class IllegalTransition(RegistryError):
    """The move is not allowed from the version's current state (or the name's deployment)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)

    @classmethod
    def from_state(
        cls, action: str, ref: str, state: str, allowed: Sequence[str]
    ) -> IllegalTransition:
        moves = ", ".join(allowed) if allowed else "none"
        return cls(f"cannot {action} model {ref}: it is in state {state}; allowed moves: {moves}")


class ValidationFailed(RegistryError):
    """A model was refused at registration; ``problems`` names each thing that is wrong."""

    def __init__(self, ref: str, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(f"model {ref} refused: " + "; ".join(self.problems))


class DraftError(RegistryError):
    """A manifest cannot be drafted from this model and sample (``init-manifest``)."""


class PolicyViolation(RegistryError):
    """An approval breaks the approval policy; ``violations`` names each rule and its numbers."""

    def __init__(self, ref: str, violations: Sequence[str]) -> None:
        self.violations = tuple(violations)
        super().__init__(f"cannot approve model {ref}: " + "; ".join(self.violations))


class ArtifactError(RegistryError):
    """Base of the artifact store's errors."""


class ChecksumMismatch(ArtifactError):
    """Stored bytes do not hash to the name they are stored under: the artifact is corrupt."""

    def __init__(self, sha256: str, actual: str) -> None:
        self.sha256, self.actual = sha256, actual
        super().__init__(
            f"artifact {sha256} failed its checksum: the stored bytes hash to {actual}"
        )


class ArtifactNotFound(ArtifactError):
    def __init__(self, sha256: str) -> None:
        super().__init__(f"artifact {sha256} is not in the store")


class ArtifactTooLarge(ArtifactError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"artifact is {size} bytes; the limit is {limit} bytes")


class ArtifactStoreUnavailable(ArtifactError):
    """The store's folder cannot be read or written (permissions, missing mount, full disk)."""

    def __init__(self, root: object, action: str, reason: str) -> None:
        super().__init__(f"artifact store {root}: cannot {action}: {reason}")


class Contention(RegistryError):
    """A transition kept losing to concurrent writers and gave up (nothing was changed)."""

    def __init__(self, name: str, attempts: int) -> None:
        super().__init__(f"model {name}: gave up after {attempts} conflicting concurrent updates")


class ArtifactRefused(RegistryError):
    """A move toward serving (shadow, approve, promote) was refused because the version's stored
    artifact no longer passes verification (checksum, ONNX load, golden examples)."""

    def __init__(self, action: str, ref: str, problem: str) -> None:
        self.problems = (problem,)
        super().__init__(
            f"cannot {action} model {ref}: its stored artifact failed verification: {problem}"
        )
