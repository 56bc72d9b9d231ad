"""Import an image named by URI (``s3://bucket/key`` or ``file:///path``) into the blob store.

``file://`` reads the API host's disk, so it is allowed only under ``settings.import_roots``,
judged on the real path (symlinks and ``..`` resolved) and checked again on the opened file,
so a path swapped for a symlink between the check and the open is caught too; a file with more
than one hard link is refused (one of its names may lie outside the roots) unless
``settings.import_allow_hardlinks``. ``s3://`` runs on the server's credentials, so it is allowed
only under ``settings.s3_import_roots``. Messages never repeat the URI: it may carry PHI.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from config.settings import Settings
from storage.blobstore import BlobInfo, BlobTooLarge, BlobWriter
from storage.s3 import s3_client


class UriImportError(Exception):
    """An image URI could not be imported; ``code`` is the API's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ImportRefused(UriImportError):
    """The URI is not allowed (scheme, location, size): the client must change the request."""


class ImportFailed(UriImportError):
    """The URI is allowed but could not be read (missing object or file, storage error)."""


def import_uri(uri: str, store: BlobWriter, settings: Settings) -> BlobInfo:
    parts = urlsplit(uri)
    if parts.scheme == "s3" and parts.netloc and parts.path.strip("/"):
        return _import_s3(parts.netloc, unquote(parts.path.lstrip("/")), store, settings)
    if parts.scheme == "file":
        return _import_file(parts.netloc, unquote(parts.path), store, settings)
    raise ImportRefused(
        "UNSUPPORTED_URI_SCHEME", "image URIs must be s3://bucket/key or file:///path"
    )


def _import_s3(bucket: str, key: str, store: BlobWriter, settings: Settings) -> BlobInfo:
    from botocore.exceptions import BotoCoreError, ClientError

    # Checked before any request: outside the roots, not even an object's existence shows.
    if not _s3_allowed(bucket, key, settings.s3_import_roots):
        raise ImportRefused("IMPORT_REFUSED", "the object is outside the allowed S3 import roots")

    client = s3_client(settings.s3_endpoint_url)
    max_bytes = settings.limits.max_bytes
    try:
        response = client.get_object(Bucket=bucket, Key=key)
        with response["Body"] as body:
            if response.get("ContentLength", 0) > max_bytes:
                raise _too_large(max_bytes)  # refuse before reading a byte
            return _put(store, body, max_bytes)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound"):
            raise ImportFailed("IMPORT_NOT_FOUND", "no such S3 object") from None
        raise ImportFailed("IMPORT_FAILED", f"S3 refused the read ({code})") from None
    except BotoCoreError as exc:
        raise ImportFailed("IMPORT_FAILED", f"S3 read failed ({type(exc).__name__})") from None


def _import_file(host: str, path: str, store: BlobWriter, settings: Settings) -> BlobInfo:
    if host not in ("", "localhost") or not path.startswith("/"):
        raise ImportRefused("IMPORT_REFUSED", "file URIs must be file:///absolute/path")
    real = Path(os.path.realpath(path))
    roots = [Path(os.path.realpath(root)) for root in settings.import_roots]
    if not _under(real, roots):
        raise ImportRefused("IMPORT_REFUSED", "the path is outside the allowed import roots")
    try:
        # O_NOFOLLOW: the last component must still be what realpath saw; O_NONBLOCK: a FIFO
        # cannot hang the request (no effect on regular files).
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        raise ImportFailed("IMPORT_NOT_FOUND", "no such file") from None
    except OSError as exc:
        raise ImportRefused(
            "IMPORT_REFUSED", f"the file cannot be opened ({exc.strerror})"
        ) from None
    try:
        _check_opened(fd, roots, settings.limits.max_bytes, settings.import_allow_hardlinks)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as fileobj:
        return _put(store, fileobj, settings.limits.max_bytes)


def _check_opened(fd: int, roots: list[Path], max_bytes: int, hardlinks: bool) -> None:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise ImportRefused("IMPORT_REFUSED", "not a regular file")
    # A hard link has no "real path" outside the root to catch: any second name may be one.
    if info.st_nlink > 1 and not hardlinks:
        raise ImportRefused("IMPORT_REFUSED", "the file has more than one hard link")
    opened = Path(f"/proc/self/fd/{fd}")
    # Linux names the file actually opened: a directory swapped for a symlink after the
    # realpath above shows up here.
    if opened.exists() and not _under(Path(os.readlink(opened)), roots):
        raise ImportRefused("IMPORT_REFUSED", "the path is outside the allowed import roots")
    if info.st_size > max_bytes:
        raise _too_large(max_bytes)


def _s3_allowed(bucket: str, key: str, roots: tuple[str, ...]) -> bool:
    """Whether ``bucket/key`` is under a ``bucket`` or ``bucket/prefix`` root (S3 keys are
    literal: no ``..`` to resolve; a prefix ends at a ``/``)."""
    for root in roots:
        root_bucket, _, prefix = root.partition("/")
        prefix = prefix.strip("/")
        if root_bucket == bucket and (not prefix or key.startswith(prefix + "/")):
            return True
    return False


def _under(path: Path, roots: list[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def _put(store: BlobWriter, fileobj: Any, max_bytes: int) -> BlobInfo:
    try:
        return store.put_stream(fileobj, max_bytes)
    except BlobTooLarge:
        raise _too_large(max_bytes) from None


def _too_large(max_bytes: int) -> ImportRefused:
    return ImportRefused("FILE_TOO_LARGE", f"the image exceeds the limit of {max_bytes} bytes")
