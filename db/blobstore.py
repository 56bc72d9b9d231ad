"""Content-addressed blob storage: a filesystem directory or an S3 bucket.

Keys are the sha256 of the bytes (hex), so a put is idempotent and duplicates are stored once.
Pixels travel between the API and the workers only through here, never through Redis.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import unquote, urlsplit

from db.settings import Settings

CHUNK = 1024 * 1024
SPOOL_IN_MEMORY = 8 * 1024 * 1024  # S3 uploads: bigger blobs spill to a temp file
_KEY = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class BlobInfo:
    key: str  # sha256 of the content, hex
    size: int


class BlobMissing(KeyError):
    """No blob under this key."""


class BlobTooLarge(ValueError):
    """The content exceeds the size limit; nothing was stored."""

    code = "FILE_TOO_LARGE"

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"content exceeds the limit of {max_bytes} bytes")
        self.max_bytes = max_bytes


class BlobStore(Protocol):
    def put_stream(self, fileobj: IO[bytes], max_bytes: int | None = None) -> BlobInfo: ...

    def put_bytes(self, data: bytes) -> BlobInfo: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...


def copy_hashing(src: IO[bytes], dst: IO[bytes], max_bytes: int | None) -> BlobInfo:
    """Copy src to dst in chunks, hashing as it goes; stop at the first byte over max_bytes."""
    digest = hashlib.sha256()
    size = 0
    while chunk := src.read(CHUNK):
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            raise BlobTooLarge(max_bytes)
        digest.update(chunk)
        dst.write(chunk)
    return BlobInfo(digest.hexdigest(), size)


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

    def put_stream(self, fileobj: IO[bytes], max_bytes: int | None = None) -> BlobInfo:
        self.root.mkdir(parents=True, exist_ok=True)
        # Same directory as the target's parent filesystem, so the rename below is atomic:
        # a reader sees either no blob or the whole blob, never a partial one.
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as tmp:
                info = copy_hashing(fileobj, tmp, max_bytes)
                tmp.flush()
                os.fsync(tmp.fileno())
            target = self.path(info.key)
            if target.exists():
                os.unlink(tmp_name)  # same key, same bytes: already stored
                return info
            target.parent.mkdir(exist_ok=True)
            os.replace(tmp_name, target)
            _fsync_dir(target.parent)
            return info
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise

    def put_bytes(self, data: bytes) -> BlobInfo:
        return self.put_stream(io.BytesIO(data))

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


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry itself is on disk.
    fd = os.open(path, os.O_RDONLY)
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

    def put_stream(self, fileobj: IO[bytes], max_bytes: int | None = None) -> BlobInfo:
        # The key is known only after the last byte, so spool first, then upload by key.
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            info = copy_hashing(fileobj, spool, max_bytes)
            if not self.exists(info.key):
                spool.seek(0)
                self.client.upload_fileobj(spool, self.bucket, self.object_name(info.key))
        return info

    def put_bytes(self, data: bytes) -> BlobInfo:
        return self.put_stream(io.BytesIO(data))

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


def s3_client(endpoint_url: str | None) -> Any:
    """A boto3 S3 client; credentials and region come from the usual AWS configuration."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url)


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
