"""The content-addressed artifact store on a real filesystem."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from registry import (
    ArtifactNotFound,
    ArtifactTooLarge,
    ChecksumMismatch,
    FileArtifactStore,
    InvalidRequest,
)
from registry.artifacts import sha256_hex

DATA = b"model bytes " * 100


def _flip_a_byte(path: Path, offset: int = 10) -> None:
    os.chmod(path, 0o644)  # the store writes artifacts read-only
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_put_returns_sha256_and_get_returns_the_bytes(tmp_path: Path) -> None:
    store = FileArtifactStore(tmp_path)
    digest = store.put(DATA)
    assert digest == sha256_hex(DATA)
    assert store.exists(digest)
    assert store.get(digest) == DATA
    assert store.put(DATA) == digest  # idempotent
    path = tmp_path / digest[:2] / digest
    assert sorted(p.name for p in path.parent.iterdir()) == [digest]  # no temp file left over
    assert path.stat().st_mode & 0o777 == 0o444


def test_a_flipped_byte_is_refused_on_read(tmp_path: Path) -> None:
    store = FileArtifactStore(tmp_path)
    digest = store.put(DATA)
    _flip_a_byte(tmp_path / digest[:2] / digest)
    with pytest.raises(ChecksumMismatch) as caught:
        store.get(digest)
    actual = sha256_hex(bytes((tmp_path / digest[:2] / digest).read_bytes()))
    assert str(caught.value) == (
        f"artifact {digest} failed its checksum: the stored bytes hash to {actual}"
    )
    # Putting the good bytes again repairs the corrupt copy.
    store.put(DATA)
    assert store.get(digest) == DATA


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ABC", "0" * 63, "g" * 64, "0" * 64 + "/x"])
def test_paths_come_only_from_sha256_digests(tmp_path: Path, bad: str) -> None:
    store = FileArtifactStore(tmp_path)
    with pytest.raises(InvalidRequest, match="is not a sha256 hex digest"):
        store.get(bad)
    with pytest.raises(InvalidRequest):
        store.exists(bad)


def test_missing_artifact(tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFound) as caught:
        FileArtifactStore(tmp_path).get("a" * 64)
    assert str(caught.value) == f"artifact {'a' * 64} is not in the store"
    assert not FileArtifactStore(tmp_path).exists("a" * 64)


def test_size_limit_on_write_and_read(tmp_path: Path) -> None:
    small = FileArtifactStore(tmp_path, max_bytes=1000)
    with pytest.raises(ArtifactTooLarge) as caught:
        small.put(DATA)
    assert str(caught.value) == "artifact is 1200 bytes; the limit is 1000 bytes"
    assert not any(tmp_path.iterdir())
    digest = FileArtifactStore(tmp_path).put(DATA)
    with pytest.raises(ArtifactTooLarge):
        small.get(digest)
    with pytest.raises(InvalidRequest, match="max_bytes must be positive; got 0"):
        FileArtifactStore(tmp_path, max_bytes=0)
