"""The content-addressed artifact store, on a real filesystem and on a real S3-compatible
server: the same contract (sha256 names, verified reads, size limits, exact errors) for both."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from registry import (
    ArtifactNotFound,
    ArtifactTooLarge,
    ChecksumMismatch,
    FileArtifactStore,
    InvalidRequest,
    SettingsError,
    SharedSettings,
    load_settings,
)
from registry.artifacts import ArtifactStore, sha256_hex
from registry.errors import ArtifactStoreUnavailable
from registry.s3 import S3ArtifactStore, s3_client
from shadowline.stack import free_port
from tests.registry.stores import corrupt, make_store, stored_objects

DATA = b"model bytes " * 100  # 1200 bytes

MakeStore = Callable[..., ArtifactStore]


@pytest.fixture
def new_store(store_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> MakeStore:
    """Factory: ``new_store(max_bytes=...)`` on this test's backend, all on the same storage."""
    backend = store_backend
    endpoint = bucket = ""
    if backend == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("s3_bucket")

    def make(max_bytes: int = 256 << 20) -> ArtifactStore:
        return make_store(
            backend,
            folder=tmp_path / "artifacts",
            endpoint=endpoint,
            bucket=bucket,
            max_bytes=max_bytes,
        )

    return make


def test_put_returns_sha256_and_get_returns_the_bytes(new_store: MakeStore) -> None:
    store = new_store()
    digest = store.put(DATA)
    assert digest == sha256_hex(DATA)
    assert store.exists(digest)
    assert store.get(digest) == DATA
    assert store.put(DATA) == digest  # idempotent
    assert [name.rsplit("/", 1)[-1] for name in stored_objects(store)] == [digest]


def test_a_flipped_byte_is_refused_on_read(new_store: MakeStore) -> None:
    store = new_store()
    digest = store.put(DATA)
    actual = sha256_hex(corrupt(store, digest))
    with pytest.raises(ChecksumMismatch) as caught:
        store.get(digest)
    assert str(caught.value) == (
        f"artifact {digest} failed its checksum: the stored bytes hash to {actual}"
    )
    # Putting the good bytes again repairs the corrupt copy.
    store.put(DATA)
    assert store.get(digest) == DATA


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ABC", "0" * 63, "g" * 64, "0" * 64 + "/x"])
def test_names_come_only_from_sha256_digests(new_store: MakeStore, bad: str) -> None:
    store = new_store()
    with pytest.raises(InvalidRequest, match="is not a sha256 hex digest"):
        store.get(bad)
    with pytest.raises(InvalidRequest):
        store.exists(bad)


def test_missing_artifact(new_store: MakeStore) -> None:
    with pytest.raises(ArtifactNotFound) as caught:
        new_store().get("a" * 64)
    assert str(caught.value) == f"artifact {'a' * 64} is not in the store"
    assert not new_store().exists("a" * 64)


def test_size_limit_on_write_and_read(new_store: MakeStore) -> None:
    small = new_store(max_bytes=1024)
    with pytest.raises(ArtifactTooLarge) as caught:
        small.put(DATA)
    assert str(caught.value) == "artifact is 1200 bytes; the limit is 1024 bytes"
    assert stored_objects(small) == []
    digest = new_store().put(DATA)
    with pytest.raises(ArtifactTooLarge):
        small.get(digest)


def test_files_are_read_only_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    store = FileArtifactStore(tmp_path)
    digest = store.put(DATA)
    path = tmp_path / digest[:2] / digest
    assert sorted(p.name for p in path.parent.iterdir()) == [digest]
    assert path.stat().st_mode & 0o777 == 0o444
    with pytest.raises(InvalidRequest, match="max_bytes must be positive; got 0"):
        FileArtifactStore(tmp_path, max_bytes=0)


def test_an_unwritable_or_unreadable_folder_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    store = FileArtifactStore(blocker)
    with pytest.raises(
        ArtifactStoreUnavailable, match=f"^artifact store {blocker}: cannot write: "
    ):
        store.put(b"model bytes")
    digest = sha256_hex(b"model bytes")
    with pytest.raises(ArtifactStoreUnavailable, match=f"^artifact store {blocker}: cannot read: "):
        store.get(digest)


def test_a_missing_bucket_or_unreachable_server_is_named(s3_endpoint: str, s3_bucket: str) -> None:
    missing = S3ArtifactStore(
        s3_client(endpoint_url=s3_endpoint, region="us-east-1"), bucket="no-such-bucket"
    )
    with pytest.raises(ArtifactStoreUnavailable) as read:
        missing.get(sha256_hex(DATA))
    assert str(read.value) == (
        "artifact store s3://no-such-bucket/: cannot read: NoSuchBucket: "
        "The specified bucket does not exist"
    )
    with pytest.raises(ArtifactStoreUnavailable) as write:
        missing.put(DATA)
    assert str(write.value).startswith("artifact store s3://no-such-bucket/: cannot ")
    closed = f"http://127.0.0.1:{free_port()}"
    down = S3ArtifactStore(
        s3_client(endpoint_url=closed, region="us-east-1", attempts=1), bucket=s3_bucket
    )
    for call in (down.get, down.exists):
        with pytest.raises(
            ArtifactStoreUnavailable,
            match=f"^artifact store s3://{s3_bucket}/: cannot read: Could not connect to the "
            f'endpoint URL: "{closed}/',
        ):
            call(sha256_hex(DATA))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"bucket": ""}, "an S3 artifact store needs a bucket name"),
        ({"bucket": "b", "prefix": "models"}, "S3 prefix 'models' must end with '/'"),
        ({"bucket": "b", "max_bytes": 0}, "max_bytes must be positive; got 0"),
    ],
)
def test_bad_s3_store_arguments_are_refused(
    s3_endpoint: str, arguments: dict[str, Any], message: str
) -> None:
    client = s3_client(endpoint_url=s3_endpoint, region="us-east-1")
    with pytest.raises(InvalidRequest) as caught:
        S3ArtifactStore(client, **arguments)
    assert str(caught.value) == message


def test_the_s3_backend_needs_a_bucket_setting(in_tmp_cwd: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(SharedSettings, artifact_backend="s3")
    assert str(caught.value).splitlines()[1] == (
        "  Value error, SHADOWLINE_ARTIFACT_S3_BUCKET must be set when "
        "SHADOWLINE_ARTIFACT_BACKEND=s3"
    )
