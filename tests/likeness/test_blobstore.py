from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from likeness.blobstore import BlobStore, sha256_file
from likeness.errors import IntegrityProblem, NotFound


def test_put_get_and_dedupe(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    source = tmp_path / "frame.bin"
    source.write_bytes(b"x" * 3_000_000)
    sha = store.put_file(source)
    assert sha == hashlib.sha256(source.read_bytes()).hexdigest() == sha256_file(source)
    assert store.exists(sha) and store.read_bytes(sha) == source.read_bytes()
    assert store.put_file(source) == sha and list(store.iter_hashes()) == [sha]
    assert store.local_path(sha).relative_to(tmp_path / "blobs").parts[:2] == (sha[:2], sha[2:4])
    assert store.put_bytes(b"abc") == hashlib.sha256(b"abc").hexdigest()
    assert sorted(store.iter_hashes()) == sorted([sha, hashlib.sha256(b"abc").hexdigest()])


def test_a_wrong_hash_never_lands_under_that_name(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    source = tmp_path / "frame.bin"
    source.write_bytes(b"real content")
    with pytest.raises(IntegrityProblem):
        store.put_file(source, "0" * 64)
    assert not store.exists("0" * 64)
    assert list(store.iter_hashes()) == []
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []  # the temp file was removed


def test_missing_blob_is_a_clear_error(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    with pytest.raises(NotFound, match="likeness doctor"):
        store.read_bytes("f" * 64)
    with pytest.raises(ValueError):
        store.key("../../etc/passwd")


def test_fsspec_url_store(tmp_path: Path) -> None:
    store = BlobStore("memory://likeness-test-blobs")
    source = tmp_path / "a.bin"
    source.write_bytes(b"remote bytes")
    sha = store.put_file(source)
    assert not store.is_local
    assert store.read_bytes(sha) == b"remote bytes"
    assert sha in set(store.iter_hashes())
    store.delete(sha)
    assert not store.exists(sha)


@pytest.mark.parametrize("name", ["a" * 64 + "\n", "\n" + "a" * 64, "A" * 64, "a" * 63, "a" * 65])
def test_only_an_exact_digest_names_a_blob(tmp_path: Path, name: str) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    with pytest.raises(ValueError, match="not a SHA-256"):
        store.key(name)
    assert store.key("a" * 64).endswith("/aa/aa/" + "a" * 64)
