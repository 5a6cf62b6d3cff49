"""Immutable, content-addressed model artifacts.

An artifact is stored under the sha256 of its bytes and verified on every read, so a flipped bit
on disk is refused instead of being served.  File paths are built only from validated sha256 hex
strings: nothing a user types ever becomes part of a path.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from registry.constants import DEFAULT_MAX_ARTIFACT_BYTES
from registry.errors import (
    ArtifactNotFound,
    ArtifactTooLarge,
    ChecksumMismatch,
    InvalidRequest,
)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_sha256(value: str) -> str:
    """``value`` if it is a lower-case sha256 hex digest; InvalidRequest otherwise."""
    if not _SHA256.fullmatch(value):
        raise InvalidRequest(f"{value[:80]!r} is not a sha256 hex digest")
    return value


class ArtifactStore(Protocol):
    """Where model bytes live.  Implementations must be content-addressed and verify reads."""

    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent) and return its sha256 hex digest."""
        ...

    def get(self, sha256: str) -> bytes:
        """The bytes stored under ``sha256``; ChecksumMismatch if they no longer hash to it,
        ArtifactNotFound if absent."""
        ...

    def exists(self, sha256: str) -> bool:
        """Whether something is stored under ``sha256`` (not verified)."""
        ...


class FileArtifactStore:
    """Artifacts as files ``root/ab/abcdef...`` (two-level fan-out keeps directories small).

    Writes go to a temporary file in the same directory, are fsynced, then renamed into place
    with ``os.replace``, so a reader never sees half a file and a crash leaves no partial
    artifact under a real name.
    """

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES) -> None:
        if max_bytes <= 0:
            raise InvalidRequest(f"max_bytes must be positive; got {max_bytes}")
        self.root = Path(root)
        self.max_bytes = max_bytes

    def _path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        if len(data) > self.max_bytes:
            raise ArtifactTooLarge(len(data), self.max_bytes)
        digest = sha256_hex(data)
        path = self._path(digest)
        if path.exists():
            try:
                self.get(digest)
                return digest
            except ChecksumMismatch:
                pass  # a corrupt copy: overwrite it with the good bytes below
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o444)  # immutable by convention: nobody should edit it in place
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get(self, sha256: str) -> bytes:
        path = self._path(sha256)
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                raise ArtifactTooLarge(size, self.max_bytes)
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactNotFound(sha256) from None
        actual = sha256_hex(data)
        if actual != sha256:
            raise ChecksumMismatch(sha256, actual)
        return data

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()
