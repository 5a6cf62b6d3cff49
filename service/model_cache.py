"""The scorer's last-known-good production model: a verified copy on local disk.

Whenever a production model from the registry is swapped in, the scorer writes its manifest
and ONNX bytes here.  If the registry's production cannot be loaded later (a corrupt or missing
artifact, a store that is down, a registry that cannot be read) and the scorer has nothing
loaded (it just started), it serves this copy instead of answering 503, and says it is degraded
(see :mod:`service.loader`).  The copy is verified when read: its bytes must hash to the
manifest's sha256, and it is then loaded like any model (golden examples replayed).

Layout: ``<root>/<sha256>.onnx`` and ``<root>/production.json`` (its manifest).
Both are written to a temporary file, fsynced and renamed into place, the manifest last, so a
crash mid-write leaves the previous copy readable.  One copy is kept; older ones are removed.
Replicas sharing a folder write the same kind of content atomically, so the last writer wins.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from pydantic import ValidationError

from registry.manifest import Manifest
from service.errors import ModelCacheError

_MANIFEST = "production.json"


class ModelCache:
    """One folder holding one production model (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def version(self) -> str | None:
        """The cached version, or None when nothing (readable) is cached."""
        try:
            return self._manifest().version
        except ModelCacheError:
            return None

    def save(self, manifest: Manifest, artifact: bytes) -> bool:
        """Keep ``artifact`` as the last-known-good copy; False when it already is.

        Raises :class:`ModelCacheError` when the folder cannot be written.
        """
        sha = manifest.sha256
        if sha is None or hashlib.sha256(artifact).hexdigest() != sha:
            raise ModelCacheError(
                self.root, f"refusing to cache {manifest.ref}: bytes do not match its sha256"
            )
        try:
            if self._manifest().sha256 == sha and (self.root / f"{sha}.onnx").is_file():
                return False
        except ModelCacheError:
            pass  # nothing usable cached yet
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._write(f"{sha}.onnx", artifact)
            self._write(_MANIFEST, manifest.model_dump_json().encode())
            for old in self.root.glob("*.onnx"):
                if old.name != f"{sha}.onnx":
                    old.unlink(missing_ok=True)
        except OSError as exc:
            raise ModelCacheError(self.root, f"cannot write: {exc.strerror or exc}") from exc
        return True

    def load(self) -> tuple[Manifest, bytes]:
        """The cached manifest and bytes, checked against the manifest's sha256.

        Raises :class:`ModelCacheError` naming what is wrong: nothing cached, an unreadable
        manifest, a missing file, or bytes that no longer hash to the manifest's sha256.
        """
        manifest = self._manifest()
        path = self.root / f"{manifest.sha256}.onnx"
        try:
            artifact = path.read_bytes()
        except OSError as exc:
            raise ModelCacheError(
                self.root, f"cannot read the copy of {manifest.ref}: {exc.strerror or exc}"
            ) from exc
        actual = hashlib.sha256(artifact).hexdigest()
        if actual != manifest.sha256:
            raise ModelCacheError(
                self.root,
                f"the copy of {manifest.ref} failed its checksum: expected {manifest.sha256}, "
                f"the bytes hash to {actual}",
            )
        return manifest, artifact

    def _manifest(self) -> Manifest:
        path = self.root / _MANIFEST
        try:
            manifest = Manifest.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            raise ModelCacheError(self.root, "no model is cached") from None
        except (OSError, ValidationError) as exc:
            raise ModelCacheError(self.root, f"unreadable {_MANIFEST}: {exc}") from exc
        if manifest.sha256 is None:
            raise ModelCacheError(self.root, f"{_MANIFEST} names no sha256")
        return manifest

    def _write(self, name: str, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.root / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
