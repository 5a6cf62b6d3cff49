"""The last-known-good copy on disk: written atomically, verified by sha256 when read."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.artifacts import sha256_hex
from registry.manifest import Manifest
from service.errors import ModelCacheError
from service.model_cache import ModelCache
from tests.factories import logistic_model, make_manifest


def model(version: str, bias: float = -2.0) -> tuple[Manifest, bytes]:
    artifact = logistic_model(bias=bias)
    manifest = make_manifest(artifact, version=version)
    return manifest.model_copy(update={"sha256": sha256_hex(artifact)}), artifact


def test_a_saved_copy_reads_back_and_replaces_the_previous_one(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path / "cache")
    assert cache.version() is None
    with pytest.raises(ModelCacheError) as empty:
        cache.load()
    assert str(empty.value) == f"model cache {tmp_path / 'cache'}: no model is cached"
    first, first_bytes = model("v1")
    assert cache.save(first, first_bytes)
    assert not cache.save(first, first_bytes)  # already the copy: nothing written
    assert cache.load() == (first, first_bytes)
    second, second_bytes = model("v2", bias=-1.0)
    assert cache.save(second, second_bytes)
    assert cache.load() == (second, second_bytes)
    assert cache.version() == "v2"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        f"{second.sha256}.onnx",
        "production.json",
    ]


def test_a_flipped_byte_in_the_copy_is_refused(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path)
    manifest, artifact = model("v1")
    cache.save(manifest, artifact)
    path = tmp_path / f"{manifest.sha256}.onnx"
    data = bytearray(path.read_bytes())
    data[-40] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelCacheError) as refused:
        cache.load()
    assert str(refused.value) == (
        f"model cache {tmp_path}: the copy of fraud:v1 failed its checksum: expected "
        f"{manifest.sha256}, the bytes hash to {sha256_hex(bytes(data))}"
    )


def test_broken_files_are_clear_errors(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path)
    manifest, artifact = model("v1")
    cache.save(manifest, artifact)
    (tmp_path / f"{manifest.sha256}.onnx").unlink()
    with pytest.raises(ModelCacheError, match="cannot read the copy of fraud:v1: No such file"):
        cache.load()
    (tmp_path / "production.json").write_text("{not json")
    with pytest.raises(ModelCacheError, match=r"unreadable production\.json: "):
        cache.load()
    with pytest.raises(ModelCacheError, match="bytes do not match its sha256"):
        cache.save(manifest, artifact + b"x")


def test_an_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(ModelCacheError) as failed:
        ModelCache(blocker / "cache").save(*model("v1"))
    assert str(failed.value) == f"model cache {blocker / 'cache'}: cannot write: Not a directory"
