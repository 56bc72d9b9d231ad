"""storage.blobstore batches and spools: blobs synced together at the end, invisible until then."""

from __future__ import annotations

import gc
import hashlib
import io
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from storage.blobstore import BlobMissing, BlobTooLarge, FileBlobStore, Spool
from tests.blobs import put_bytes

A, B, C = (bytes([n]) * 300_000 + bytes([n, 1, 2]) for n in range(3))
_REAL_FSYNC = os.fsync


def key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def inode(path: Path) -> int:
    return path.stat().st_ino


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


class FsyncLog:
    """Every os.fsync, which still runs: ("file", sha256 of its bytes, blob visible yet) or
    ("dir", inode)."""

    def __init__(self, store: FileBlobStore) -> None:
        self.store = store
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, fd: int) -> None:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            self.calls.append(("dir", info.st_ino))
        else:
            synced = hashlib.sha256(os.pread(fd, info.st_size, 0)).hexdigest()
            self.calls.append(("file", synced, self.store.exists(synced)))
        _REAL_FSYNC(fd)

    def dirs(self) -> list[int]:
        return [call[1] for call in self.calls if call[0] == "dir"]

    def files(self) -> list[tuple[Any, ...]]:
        return [call for call in self.calls if call[0] == "file"]


@pytest.fixture
def fsyncs(blob_store: FileBlobStore, monkeypatch: pytest.MonkeyPatch) -> FsyncLog:
    log = FsyncLog(blob_store)
    monkeypatch.setattr(os, "fsync", log)
    return log


def test_batch_syncs_each_new_file_and_directory_once_at_the_end(
    blob_store: FileBlobStore, fsyncs: FsyncLog
) -> None:
    put_bytes(blob_store, A)  # stored before: needs no file fsync, and is not rewritten
    fsyncs.calls.clear()
    with blob_store.batch() as batch:
        infos = [batch.put_stream(io.BytesIO(data)) for data in (A, B, C, B)]
        assert fsyncs.calls == []
        assert not blob_store.exists(key(B)) and not blob_store.exists(key(C))
        with pytest.raises(BlobMissing):
            blob_store.get(key(B))

    assert [info.key for info in infos] == [key(A), key(B), key(C), key(B)]
    # One fsync per new file, each before its blob was visible; then each directory once.
    assert sorted(fsyncs.files()) == sorted([("file", key(B), False), ("file", key(C), False)])
    assert fsyncs.calls[:2] == fsyncs.files()
    touched = {blob_store.root, *(blob_store.path(key(d)).parent for d in (A, B, C))}
    assert sorted(fsyncs.dirs()) == sorted(inode(d) for d in touched)
    assert [blob_store.get(key(d)) for d in (A, B, C)] == [A, B, C]
    assert files(blob_store.root) == sorted(blob_store.path(key(d)) for d in (A, B, C))


def test_single_put_is_durable_when_it_returns(blob_store: FileBlobStore, fsyncs: FsyncLog) -> None:
    info = put_bytes(blob_store, B)
    directory = blob_store.path(info.key).parent
    assert fsyncs.files() == [("file", key(B), False)]
    assert sorted(fsyncs.dirs()) == sorted([inode(directory), inode(blob_store.root)])


def test_batch_left_by_an_exception_stores_nothing(
    blob_store: FileBlobStore, fsyncs: FsyncLog
) -> None:
    with pytest.raises(RuntimeError), blob_store.batch() as batch:
        batch.put_stream(io.BytesIO(B))
        raise RuntimeError("the request failed")
    assert fsyncs.calls == []
    assert not blob_store.exists(key(B))
    assert files(blob_store.root) == []


def test_spool_over_its_limit_is_refused_when_stored(blob_store: FileBlobStore) -> None:
    spool = blob_store.spool(max_bytes=10)
    # No error while written: Werkzeug's parser would turn it into an empty form.
    assert spool.write(b"x" * 6) == 6 and spool.write(b"x" * 6) == 6
    with pytest.raises(BlobTooLarge), blob_store.batch() as batch:
        batch.put_spool(spool)
    assert files(blob_store.root) == []


def test_spool_reads_back_and_stores_by_rename(blob_store: FileBlobStore) -> None:
    spool = blob_store.spool()
    spool.write(C[:1000])
    spool.write(C[1000:])
    spool.seek(0)
    assert spool.read(4) == C[:4]  # what intake's format sniff does
    spool.seek(0)
    temp = spool.path
    with blob_store.batch() as batch:
        assert batch.put_spool(spool).key == key(C)
    assert not temp.exists() and blob_store.get(key(C)) == C


def test_unstored_spool_is_removed_when_closed_or_dropped(blob_store: FileBlobStore) -> None:
    closed = blob_store.spool()
    closed.write(A)
    closed.close()
    assert files(blob_store.root) == []
    dropped = blob_store.spool()  # a multipart parse that fails half way drops its spools
    dropped.write(A)
    assert len(files(blob_store.root)) == 1
    del dropped
    gc.collect()
    assert files(blob_store.root) == []


def test_batch_refuses_a_spool_it_cannot_rename(blob_store: FileBlobStore) -> None:
    with pytest.raises(ValueError), blob_store.batch() as batch:
        batch.put_spool(Spool(io.BytesIO()))


def test_sweep_removes_only_spools_older_than_the_cutoff(blob_store: FileBlobStore) -> None:
    stored = put_bytes(blob_store, b"kept")
    crashed, live = blob_store.spool(), blob_store.spool()
    crashed.write(b"left by a killed request")
    live.write(b"still receiving")
    crashed_path = crashed.detach()  # as after a crash: no finalizer will remove it
    old = crashed_path.stat().st_mtime - 7200
    os.utime(crashed_path, (old, old))

    assert blob_store.sweep_spools(older_than_s=3600) == 1
    assert not crashed_path.exists() and live.path.exists()
    assert blob_store.get(stored.key) == b"kept"  # blobs are never swept, however old
    live.close()
    assert blob_store.sweep_spools(older_than_s=0) == 0
