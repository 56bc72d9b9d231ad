"""Content-addressed blob storage: a filesystem directory or an S3 bucket.

Keys are the sha256 of the bytes (hex), so a put is idempotent and duplicates are stored once.
Pixels travel between the API and the workers only through here, never through Redis.

A request stores its blobs in one ``store.batch()``: the file store syncs them all when the
block exits (one fsync per new file and per directory touched, instead of waiting on the disk
after every file), and rows naming them may commit only after that. Uploads are received
straight into a ``store.spool()``, hashed as they arrive, so storing one is a rename.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from config.settings import Settings
from storage.s3 import s3_client
from storage.spool import SPOOL_PREFIX, BlobInfo, BlobTooLarge, FileSpool, Spool, unlink

__all__ = [  # the spool's names are re-exported: callers know them as the blob store's
    "BlobInfo",
    "BlobMissing",
    "BlobStore",
    "BlobTooLarge",
    "BlobWriter",
    "FileBlobStore",
    "FileSpool",
    "S3BlobStore",
    "Spool",
    "open_blob_store",
]

CHUNK = 1024 * 1024
_KEY = re.compile(r"^[0-9a-f]{64}$")
# Spools of the S3 store: temp files here (a file store spools in its own root, to rename).
S3_SPOOL_DIR = Path(tempfile.gettempdir()) / "medflow-spools"


class BlobMissing(KeyError):
    """No blob under this key."""


class BlobWriter(Protocol):
    """What stores blobs: a store, or one of its batches."""

    def put_stream(self, fileobj: IO[bytes], max_bytes: int | None = None) -> BlobInfo: ...

    def put_spool(self, spool: Spool) -> BlobInfo: ...


class BlobStore(BlobWriter, Protocol):
    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def spool(self, max_bytes: int | None = None) -> Spool: ...

    def batch(self) -> AbstractContextManager[BlobWriter]:
        """Puts whose blobs are all durable once the block exits without an exception."""
        ...

    def sweep_spools(self, older_than_s: float) -> int:
        """Remove spools a crashed process left behind; returns how many."""
        ...


SpoolT = TypeVar("SpoolT", bound=Spool)


def fill(spool: SpoolT, src: IO[bytes]) -> SpoolT:
    """Copy src into spool; stop reading at the first byte over its limit."""
    try:
        while not spool.too_large and (chunk := src.read(CHUNK)):
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    return spool


def sweep_spools(directory: Path, older_than_s: float) -> int:
    # A process killed mid-request leaves its spools (temp files) behind; none older than any
    # request could run is still in use.
    cutoff = time.time() - older_than_s
    swept = 0
    for path in directory.glob(f"{SPOOL_PREFIX}*"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                swept += 1
        except OSError:
            continue  # stored or removed meanwhile; a sweep must never fail its caller
    return swept


def check_key(key: str) -> str:
    # Keys reach paths and object names: anything but a sha256 could traverse directories.
    if not _KEY.match(key):
        raise BlobMissing(key)
    return key


class FileBlobStore:
    """Blobs under ``<root>/<key[:2]>/<key>``; each write is atomic (temp file + rename)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        check_key(key)
        return self.root / key[:2] / key

    def spool(self, max_bytes: int | None = None) -> FileSpool:
        self.root.mkdir(parents=True, exist_ok=True)
        return FileSpool(self.root, max_bytes)

    def batch(self) -> AbstractContextManager[FileBatch]:
        return FileBatch(self)

    def put_stream(self, fileobj: IO[bytes], max_bytes: int | None = None) -> BlobInfo:
        with self.batch() as batch:
            return batch.put_stream(fileobj, max_bytes)

    def sweep_spools(self, older_than_s: float) -> int:
        return sweep_spools(self.root, older_than_s)

    def put_spool(self, spool: Spool) -> BlobInfo:
        with self.batch() as batch:
            return batch.put_spool(spool)

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise BlobMissing(key) from None

    def exists(self, key: str) -> bool:
        try:
            return self.path(key).is_file()
        except BlobMissing:
            return False


class FileBatch:
    """Blobs written unsynced, then made durable and visible together when the block exits.

    Until then a blob is only a temp file, invisible under its key. On exit each new file is
    fsynced, renamed into place, and each directory touched is fsynced once (a rename is durable
    only then): a blob is never visible before its bytes are on disk, and rows naming the keys
    may commit as soon as the block has exited. On an exception nothing is stored.
    """

    def __init__(self, store: FileBlobStore) -> None:
        self.store = store
        self.pending: dict[str, Path] = {}  # key -> temp file, not yet synced nor renamed
        self.dirs: set[Path] = set()  # to fsync once, at the end

    def put_stream(self, fileobj: IO[bytes], max_bytes: int | None = None) -> BlobInfo:
        return self.put_spool(fill(self.store.spool(max_bytes), fileobj))

    def put_spool(self, spool: Spool) -> BlobInfo:
        if not isinstance(spool, FileSpool) or spool.path.parent != self.store.root:
            spool.close()
            raise ValueError("the spool belongs to another store")
        try:
            info = spool.info()
        except BlobTooLarge:
            spool.close()
            raise
        tmp, target = spool.detach(), self.store.path(info.key)
        # Even for a blob already there (its entry may be another batch's unsynced rename), and
        # the root, where its subdirectory may be new (ours or another's).
        self.dirs.update((target.parent, self.store.root))
        if info.key in self.pending or target.exists():
            tmp.unlink()  # same key, same bytes: already stored (or pending here)
        else:
            self.pending[info.key] = tmp
        return info

    def __enter__(self) -> FileBatch:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self._commit()
        finally:
            for tmp in self.pending.values():  # what an exception left unstored
                unlink(tmp)

    def _commit(self) -> None:
        for tmp in self.pending.values():
            _fsync(tmp)  # the bytes before the name: a reader never sees a blob a crash can lose
        for key, tmp in self.pending.items():
            target = self.store.path(key)
            target.parent.mkdir(exist_ok=True)
            os.replace(tmp, target)  # atomic; over a blob stored meanwhile, the same bytes
        self.pending.clear()
        for directory in self.dirs:
            _fsync(directory)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)  # fsync needs no write access, and works on directories
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3BlobStore:
    """Blobs as objects ``<prefix>/<key>`` in one bucket (AWS, MinIO, or a moto server)."""

    def __init__(
        self, bucket: str, prefix: str = "", endpoint_url: str | None = None, *, client: Any = None
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client or s3_client(endpoint_url)

    def object_name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def spool(self, max_bytes: int | None = None) -> FileSpool:
        # The key is known only after the last byte, so spool first, then upload by key. On
        # disk, never in memory: a request's uploads are all spooled before any is stored.
        S3_SPOOL_DIR.mkdir(parents=True, exist_ok=True)
        return FileSpool(S3_SPOOL_DIR, max_bytes)

    def batch(self) -> AbstractContextManager[S3BlobStore]:
        return nullcontext(self)  # a PUT is durable once it returns: nothing to sync at the end

    def sweep_spools(self, older_than_s: float) -> int:
        return sweep_spools(S3_SPOOL_DIR, older_than_s)  # what a crash left on this host

    def put_stream(self, fileobj: IO[bytes], max_bytes: int | None = None) -> BlobInfo:
        return self.put_spool(fill(self.spool(max_bytes), fileobj))

    def put_spool(self, spool: Spool) -> BlobInfo:
        with spool:
            info = spool.info()
            if not self.exists(info.key):
                with spool.reader() as content:
                    self.client.upload_fileobj(content, self.bucket, self.object_name(info.key))
        return info

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.object_name(key))
        except self.client.exceptions.NoSuchKey:
            raise BlobMissing(key) from None
        return bytes(response["Body"].read())

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_name(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        except BlobMissing:
            return False
        return True


def open_blob_store(settings: Settings) -> BlobStore:
    """The store named by ``settings.blob_url``: ``file:///abs/dir`` or ``s3://bucket/prefix``."""
    parts = urlsplit(settings.blob_url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError("MEDFLOW_BLOB_URL: file URLs must be file:///absolute/dir")
        return FileBlobStore(Path(unquote(parts.path)))
    if parts.scheme == "s3" and parts.netloc:
        return S3BlobStore(parts.netloc, unquote(parts.path), settings.s3_endpoint_url)
    raise ValueError("MEDFLOW_BLOB_URL must be file:///dir or s3://bucket/prefix")
