"""storage.blobstore: the filesystem store, and the S3 store against a real moto server."""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from storage.blobstore import (
    BlobInfo,
    BlobMissing,
    BlobTooLarge,
    FileBlobStore,
    S3BlobStore,
    open_blob_store,
)
from tests.blobs import put_bytes

DATA = b"\x89PNG pretend image bytes" * 1000
KEY = hashlib.sha256(DATA).hexdigest()


class FailingReader(io.RawIOBase):
    """Yields some bytes, then fails: a client that disconnects mid-upload."""

    def __init__(self) -> None:
        self.sent = False

    def read(self, size: int = -1) -> bytes:
        if self.sent:
            raise ConnectionResetError("client went away")
        self.sent = True
        return b"partial"


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_file_store_put_get_dedupe(blob_store: FileBlobStore) -> None:
    info = put_bytes(blob_store, DATA)
    assert info == BlobInfo(KEY, len(DATA))
    assert blob_store.get(KEY) == DATA and blob_store.exists(KEY)
    assert blob_store.put_stream(io.BytesIO(DATA), max_bytes=len(DATA)) == info
    assert files(blob_store.root) == [blob_store.root / KEY[:2] / KEY]


def test_file_store_missing_and_bad_keys(blob_store: FileBlobStore) -> None:
    with pytest.raises(BlobMissing):
        blob_store.get("0" * 64)
    for bad in ("../../etc/passwd", "A" * 64, ""):
        assert not blob_store.exists(bad)
        with pytest.raises(BlobMissing):
            blob_store.get(bad)


def test_file_store_refuses_too_large_and_leaves_nothing(blob_store: FileBlobStore) -> None:
    with pytest.raises(BlobTooLarge) as too_large:
        blob_store.put_stream(io.BytesIO(DATA), max_bytes=len(DATA) - 1)
    assert too_large.value.code == "FILE_TOO_LARGE"
    assert files(blob_store.root) == []


def test_file_store_failed_write_leaves_nothing(blob_store: FileBlobStore) -> None:
    with pytest.raises(ConnectionResetError):
        blob_store.put_stream(FailingReader())  # type: ignore[arg-type]
    assert files(blob_store.root) == []


def test_file_store_concurrent_puts_of_the_same_bytes(blob_store: FileBlobStore) -> None:
    results: list[BlobInfo] = []
    threads = [
        threading.Thread(target=lambda: results.append(put_bytes(blob_store, DATA)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [BlobInfo(KEY, len(DATA))] * 8
    assert files(blob_store.root) == [blob_store.root / KEY[:2] / KEY]
    assert blob_store.get(KEY) == DATA


class CountingClient:
    """A real boto3 client that counts uploads, to see the store skip one."""

    def __init__(self, client: Any) -> None:
        self._client, self.uploads = client, 0

    def upload_fileobj(self, *args: Any, **kwargs: Any) -> None:
        self.uploads += 1
        self._client.upload_fileobj(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_s3_store_put_get_dedupe(s3: Any, s3_bucket: str) -> None:
    client = CountingClient(s3)
    store = S3BlobStore(s3_bucket, "blobs/", client=client)
    assert put_bytes(store, DATA) == BlobInfo(KEY, len(DATA))
    assert store.put_stream(io.BytesIO(DATA)) == BlobInfo(KEY, len(DATA))
    assert client.uploads == 1  # the second put found the object and skipped the upload
    assert store.get(KEY) == DATA and store.exists(KEY)
    listed = s3.list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert [o["Key"] for o in listed] == [f"blobs/{KEY}"]
    assert not store.exists("0" * 64)
    with pytest.raises(BlobMissing):
        store.get("0" * 64)


def test_s3_store_refuses_too_large(s3: Any, s3_bucket: str, s3_endpoint: str) -> None:
    store = S3BlobStore(s3_bucket, "", s3_endpoint)
    with pytest.raises(BlobTooLarge):
        store.put_stream(io.BytesIO(DATA), max_bytes=100)
    assert "Contents" not in s3.list_objects_v2(Bucket=s3_bucket)


def test_open_blob_store(tmp_path: Path, s3_endpoint: str, s3_bucket: str) -> None:
    file_store = open_blob_store(Settings(blob_url=f"file://{tmp_path}/blobs"))
    assert isinstance(file_store, FileBlobStore) and file_store.root == tmp_path / "blobs"
    settings = Settings(blob_url=f"s3://{s3_bucket}/medflow/blobs", s3_endpoint_url=s3_endpoint)
    s3_store = open_blob_store(settings)
    assert isinstance(s3_store, S3BlobStore)
    assert (s3_store.bucket, s3_store.prefix) == (s3_bucket, "medflow/blobs")
    assert s3_store.get(put_bytes(s3_store, DATA).key) == DATA
    for bad in ("http://example.com/x", "file://host/dir", "s3:///nobucket"):
        with pytest.raises(ValueError):
            open_blob_store(Settings(blob_url=bad))


def test_s3_store_batch_and_spools(s3: Any, s3_bucket: str) -> None:
    client = CountingClient(s3)
    store = S3BlobStore(s3_bucket, "", client=client)
    with store.batch() as batch:
        assert batch.put_stream(io.BytesIO(DATA)) == BlobInfo(KEY, len(DATA))
        assert store.exists(KEY)  # a PUT is durable when it returns: nothing waits for the end
        spool = store.spool()
        spool.write(DATA)
        assert batch.put_spool(spool) == BlobInfo(KEY, len(DATA))
        too_large = store.spool(max_bytes=10)
        too_large.write(DATA)
        with pytest.raises(BlobTooLarge):
            batch.put_spool(too_large)
    assert client.uploads == 1
    assert store.get(KEY) == DATA
