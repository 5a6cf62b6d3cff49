"""Artifact stores of both backends for the registry's tests, and ways to look inside them.

``make_store("file" | "s3", ...)`` builds the store through ``registry.artifact_store`` from
settings, as the processes do, so the tests cover the backend selection too.  The S3 store
talks to the real S3-compatible server of the ``s3_endpoint`` fixture.
"""

from __future__ import annotations

from pathlib import Path

from registry import FileArtifactStore, SharedSettings, artifact_store, load_settings
from registry.artifacts import ArtifactStore
from registry.constants import DEFAULT_MAX_ARTIFACT_BYTES
from registry.s3 import S3ArtifactStore

BACKENDS = ("file", "s3")


def make_store(
    backend: str,
    *,
    folder: Path,
    endpoint: str = "",
    bucket: str = "",
    max_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES,
) -> ArtifactStore:
    """A store of ``backend``: files under ``folder``, or ``bucket`` on the S3 ``endpoint``."""
    settings = load_settings(
        SharedSettings,
        artifact_backend=backend,
        artifact_dir=str(folder),
        artifact_max_bytes=max_bytes,
        artifact_s3_bucket=bucket,
        artifact_s3_endpoint_url=endpoint or None,
        artifact_s3_region="us-east-1",
    )
    return artifact_store(settings)


def stored_objects(store: ArtifactStore) -> list[str]:
    """Every name the store holds (files under its root, or keys under its prefix)."""
    if isinstance(store, FileArtifactStore):
        if not store.root.exists():
            return []
        return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
    assert isinstance(store, S3ArtifactStore)
    listing = store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def corrupt(store: ArtifactStore, digest: str, offset: int = 10) -> bytes:
    """Flip one bit of the stored copy of ``digest`` behind the store's back; returns the
    corrupt bytes."""
    if isinstance(store, FileArtifactStore):
        path = store.root / digest[:2] / digest
        path.chmod(0o644)  # the store writes artifacts read-only
        data = bytearray(path.read_bytes())
        data[offset] ^= 0x01
        path.write_bytes(bytes(data))
        return bytes(data)
    assert isinstance(store, S3ArtifactStore)
    key = f"{store.prefix}{digest[:2]}/{digest}"
    data = bytearray(store.client.get_object(Bucket=store.bucket, Key=key)["Body"].read())
    data[offset] ^= 0x01
    store.client.put_object(Bucket=store.bucket, Key=key, Body=bytes(data))
    return bytes(data)
