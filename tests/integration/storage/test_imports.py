"""storage.imports: file:// only under the import roots (however spelled), s3:// via moto."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from pipeline.limits import ImageLimits
from storage.blobstore import FileBlobStore
from storage.imports import ImportFailed, ImportRefused, import_uri

DATA = b"DICM pretend image" * 100


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "imports"
    (root / "study").mkdir(parents=True)
    (root / "study" / "a.dcm").write_bytes(DATA)
    (tmp_path / "secret.txt").write_bytes(b"outside the root")
    return root


@pytest.fixture
def settings(root: Path, settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(import_roots=(root,))


def code_of(uri: str, store: FileBlobStore, settings: Settings) -> str:
    with pytest.raises((ImportRefused, ImportFailed)) as error:
        import_uri(uri, store, settings)
    return str(error.value.code)


def test_file_under_root(root: Path, blob_store: FileBlobStore, settings: Settings) -> None:
    info = import_uri(f"file://{root}/study/a.dcm", blob_store, settings)
    assert info.key == hashlib.sha256(DATA).hexdigest() and info.size == len(DATA)
    assert blob_store.get(info.key) == DATA
    # Spellings that stay inside the root are fine.
    assert import_uri(f"file://{root}/study/../study/./a.dcm", blob_store, settings) == info
    assert import_uri(f"file://localhost{root}/study/a%2Edcm", blob_store, settings) == info


def test_escapes_are_refused(root: Path, blob_store: FileBlobStore, settings: Settings) -> None:
    outside = root.parent / "secret.txt"
    (root / "link").symlink_to(outside)
    (root / "dirlink").symlink_to(root.parent)
    sibling = root.parent / "imports-evil"  # shares the root's name as a string prefix
    sibling.mkdir()
    (sibling / "x.dcm").write_bytes(DATA)
    for uri in (
        f"file://{outside}",
        f"file://{root}/../secret.txt",
        f"file://{root}/study/%2e%2e/%2e%2e/secret.txt",
        f"file://{root}/link",
        f"file://{root}/dirlink/secret.txt",
        f"file://{sibling}/x.dcm",
        "file:///etc/passwd",
        f"file://otherhost{root}/study/a.dcm",
        "file:relative/a.dcm",
    ):
        assert code_of(uri, blob_store, settings) == "IMPORT_REFUSED", uri
    assert not blob_store.root.exists() or not any(blob_store.root.rglob("*"))


def test_symlink_inside_the_root_is_fine(
    root: Path, blob_store: FileBlobStore, settings: Settings
) -> None:
    (root / "alias.dcm").symlink_to(root / "study" / "a.dcm")
    assert import_uri(f"file://{root}/alias.dcm", blob_store, settings).size == len(DATA)


def test_root_given_through_a_symlink(
    root: Path, tmp_path: Path, blob_store: FileBlobStore, settings_factory: Callable[..., Any]
) -> None:
    (tmp_path / "root-alias").symlink_to(root)
    settings = settings_factory(import_roots=(tmp_path / "root-alias",))
    assert import_uri(f"file://{root}/study/a.dcm", blob_store, settings).size == len(DATA)


def test_missing_and_odd_files(root: Path, blob_store: FileBlobStore, settings: Settings) -> None:
    assert code_of(f"file://{root}/study/nope.dcm", blob_store, settings) == "IMPORT_NOT_FOUND"
    # Outside the roots, existence is never revealed: refused either way.
    assert code_of(f"file://{root.parent}/nope.dcm", blob_store, settings) == "IMPORT_REFUSED"
    assert code_of(f"file://{root}/study", blob_store, settings) == "IMPORT_REFUSED"
    os.mkfifo(root / "pipe")  # opening must not hang on a FIFO
    assert code_of(f"file://{root}/pipe", blob_store, settings) == "IMPORT_REFUSED"


def test_no_roots_means_no_file_imports(
    root: Path, blob_store: FileBlobStore, settings_factory: Callable[..., Settings]
) -> None:
    settings = settings_factory()
    assert code_of(f"file://{root}/study/a.dcm", blob_store, settings) == "IMPORT_REFUSED"


def test_size_limit(root: Path, blob_store: FileBlobStore, settings: Settings) -> None:
    small = Settings(**{**settings.__dict__, "limits": ImageLimits(max_bytes=len(DATA) - 1)})
    assert code_of(f"file://{root}/study/a.dcm", blob_store, small) == "FILE_TOO_LARGE"


def test_unsupported_schemes(blob_store: FileBlobStore, settings: Settings) -> None:
    for uri in ("http://example.com/a.dcm", "ftp://x/a", "/abs/a.dcm", "a.dcm", "s3://bucket"):
        assert code_of(uri, blob_store, settings) == "UNSUPPORTED_URI_SCHEME", uri


def test_s3_import(
    s3: Any,
    s3_bucket: str,
    s3_endpoint: str,
    blob_store: FileBlobStore,
    settings_factory: Callable[..., Settings],
) -> None:
    s3.put_object(Bucket=s3_bucket, Key="studies/1/a b.dcm", Body=DATA)
    roots = (f"{s3_bucket}/studies", "medflow-no-such-bucket")
    settings = settings_factory(s3_endpoint_url=s3_endpoint, s3_import_roots=roots)
    info = import_uri(f"s3://{s3_bucket}/studies/1/a%20b.dcm", blob_store, settings)
    assert blob_store.get(info.key) == DATA
    missing = f"s3://{s3_bucket}/studies/1/nope.dcm"
    assert code_of(missing, blob_store, settings) == "IMPORT_NOT_FOUND"
    no_bucket = "s3://medflow-no-such-bucket/a.dcm"
    assert code_of(no_bucket, blob_store, settings) == "IMPORT_NOT_FOUND"
    small = settings_factory(
        s3_endpoint_url=s3_endpoint,
        limits=ImageLimits(max_bytes=len(DATA) - 1),
        s3_import_roots=roots,
    )
    uri = f"s3://{s3_bucket}/studies/1/a%20b.dcm"
    assert code_of(uri, blob_store, small) == "FILE_TOO_LARGE"


def test_s3_imports_only_under_the_configured_roots(
    s3: Any,
    s3_bucket: str,
    s3_endpoint: str,
    blob_store: FileBlobStore,
    settings_factory: Callable[..., Settings],
) -> None:
    # Before issue 9 any bucket the server's credentials reach was read (or its objects'
    # existence revealed); now only "bucket" or "bucket/prefix" roots are.
    s3.put_object(Bucket=s3_bucket, Key="tenant-a/a.dcm", Body=DATA)
    s3.put_object(Bucket=s3_bucket, Key="tenant-ab/b.dcm", Body=DATA)
    settings = settings_factory(
        s3_endpoint_url=s3_endpoint, s3_import_roots=(f"{s3_bucket}/tenant-a/",)
    )
    assert import_uri(f"s3://{s3_bucket}/tenant-a/a.dcm", blob_store, settings).size == len(DATA)
    for uri in (
        f"s3://{s3_bucket}/tenant-ab/b.dcm",  # shares the prefix as a string only
        f"s3://{s3_bucket}/tenant-a",
        f"s3://{s3_bucket}/other/nope.dcm",  # missing, but outside: refused, never "not found"
        "s3://another-bucket/tenant-a/a.dcm",
    ):
        assert code_of(uri, blob_store, settings) == "IMPORT_REFUSED", uri
    nothing = settings_factory(s3_endpoint_url=s3_endpoint)
    assert code_of(f"s3://{s3_bucket}/tenant-a/a.dcm", blob_store, nothing) == "IMPORT_REFUSED"
    whole = settings_factory(s3_endpoint_url=s3_endpoint, s3_import_roots=(s3_bucket,))
    assert import_uri(f"s3://{s3_bucket}/tenant-ab/b.dcm", blob_store, whole).size == len(DATA)


def test_a_hard_link_is_refused_unless_allowed(
    root: Path,
    blob_store: FileBlobStore,
    settings: Settings,
    settings_factory: Callable[..., Settings],
) -> None:
    # A hard link inside the root to a file outside it has no real path outside to catch.
    outside = root.parent / "secret.txt"
    os.link(outside, root / "study" / "linked.dcm")
    assert code_of(f"file://{root}/study/linked.dcm", blob_store, settings) == "IMPORT_REFUSED"
    # The file's other name counts too: a.dcm, once linked from elsewhere, is refused as well.
    os.link(root / "study" / "a.dcm", root.parent / "a-copy.dcm")
    assert code_of(f"file://{root}/study/a.dcm", blob_store, settings) == "IMPORT_REFUSED"
    allowed = settings_factory(import_roots=(root,), import_allow_hardlinks=True)
    assert import_uri(f"file://{root}/study/a.dcm", blob_store, allowed).size == len(DATA)
