"""Artifacts in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...).

The same contract as :class:`registry.artifacts.FileArtifactStore`: objects are stored under
the sha256 of their bytes (``<prefix><ab>/<abcdef...>``), keys are built only from validated
digests, and every read is verified, so a changed object is refused instead of served.  A
PUT replaces an object whole (a reader sees the old bytes or the new ones, never half), so no
temporary name is needed.  Several scorer replicas and the retrain worker share one bucket.

Importing this module imports boto3: :func:`registry.connections.artifact_store` does so only
when ``SHADOWLINE_ARTIFACT_BACKEND=s3``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from registry.artifacts import check_sha256, sha256_hex
from registry.constants import DEFAULT_MAX_ARTIFACT_BYTES
from registry.errors import (
    ArtifactNotFound,
    ArtifactStoreUnavailable,
    ArtifactTooLarge,
    ChecksumMismatch,
    InvalidRequest,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING = {"404", "NoSuchKey", "NotFound"}


def s3_client(
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    timeout_s: float = 5.0,
    attempts: int = 3,
) -> S3Client:
    """An S3 client with bounded timeouts and retries; credentials from boto3's chain.

    Checksums are computed and checked only where the API requires them: several
    S3-compatible servers refuse the newer flexible checksums, and the sha256 check on every
    read is what guards the bytes.
    """
    config = Config(
        connect_timeout=timeout_s,
        read_timeout=timeout_s * 6,  # a large model takes a while to stream
        retries={"max_attempts": attempts, "mode": "standard"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


class S3ArtifactStore:
    """Content-addressed artifacts in ``bucket`` under ``prefix`` (empty or ending in ``/``)."""

    def __init__(
        self,
        client: S3Client,
        *,
        bucket: str,
        prefix: str = "",
        max_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES,
    ) -> None:
        if max_bytes <= 0:
            raise InvalidRequest(f"max_bytes must be positive; got {max_bytes}")
        if not bucket:
            raise InvalidRequest("an S3 artifact store needs a bucket name")
        if prefix and not prefix.endswith("/"):
            raise InvalidRequest(f"S3 prefix {prefix!r} must end with '/'")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.where = f"s3://{bucket}/{prefix}"

    def _key(self, sha256: str) -> str:
        check_sha256(sha256)
        return f"{self.prefix}{sha256[:2]}/{sha256}"

    def put(self, data: bytes) -> str:
        """Store ``data`` unless a good copy is there already; a corrupt copy is replaced."""
        if len(data) > self.max_bytes:
            raise ArtifactTooLarge(len(data), self.max_bytes)
        digest = sha256_hex(data)
        try:
            self.get(digest)
            return digest
        except (ArtifactNotFound, ChecksumMismatch):
            pass  # absent, or corrupt: write the good bytes below
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(digest), Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise ArtifactStoreUnavailable(self.where, "write", _reason(exc)) from exc
        return digest

    def get(self, sha256: str) -> bytes:
        key = self._key(sha256)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            body = response["Body"]
            try:
                size = response["ContentLength"]
                if size > self.max_bytes:
                    raise ArtifactTooLarge(size, self.max_bytes)
                data = body.read()
            finally:
                body.close()
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise ArtifactNotFound(sha256) from None
            raise ArtifactStoreUnavailable(self.where, "read", _reason(exc)) from exc
        except BotoCoreError as exc:
            raise ArtifactStoreUnavailable(self.where, "read", _reason(exc)) from exc
        actual = sha256_hex(data)
        if actual != sha256:
            raise ChecksumMismatch(sha256, actual)
        return data

    def exists(self, sha256: str) -> bool:
        key = self._key(sha256)
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return False
            raise ArtifactStoreUnavailable(self.where, "read", _reason(exc)) from exc
        except BotoCoreError as exc:
            raise ArtifactStoreUnavailable(self.where, "read", _reason(exc)) from exc
        return True


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _reason(exc: ClientError | BotoCoreError) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', exc)}"
    return str(exc)
