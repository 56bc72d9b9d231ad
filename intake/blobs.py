"""Storing the images of one submission as blobs, before any transaction opens.

One batch of the blob store per call: on return every blob is durable, so the rows naming them
may commit. Blobs are content-addressed: an orphan from a submission that fails later is
harmless, and a retry reuses it. Nothing here logs or raises a ref, a file name or a URI.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO

from config.settings import Settings
from intake.errors import FileTooLarge, ImageNotImported
from storage.blobstore import BlobInfo, BlobStore, BlobTooLarge, BlobWriter, Spool
from storage.imports import ImportRefused, UriImportError, import_uri

Stored = list[tuple[str, BlobInfo]]  # (ref, blob) in submission order


def store_files(blobs: BlobStore, files: Sequence[tuple[str, IO[bytes]]], max_bytes: int) -> Stored:
    """Store ``(ref, stream)`` files; a stream that is a ``Spool`` of ``blobs`` (an upload
    received by the API) is hashed already, and storing it is a rename."""
    with blobs.batch() as batch:
        return [(ref, _put(batch, i, stream, max_bytes)) for i, (ref, stream) in enumerate(files)]


def import_uris(blobs: BlobStore, uris: Sequence[tuple[str, str]], settings: Settings) -> Stored:
    """Import ``(uri, ref)`` pairs (``s3://``, or ``file://`` under ``settings.import_roots``)."""
    with blobs.batch() as batch:
        return [(ref, _import(batch, i, uri, settings)) for i, (uri, ref) in enumerate(uris)]


def _put(batch: BlobWriter, index: int, stream: IO[bytes], max_bytes: int) -> BlobInfo:
    try:
        if isinstance(stream, Spool):
            return batch.put_spool(stream)
        return batch.put_stream(stream, max_bytes)
    except BlobTooLarge as exc:
        raise FileTooLarge(index, exc.max_bytes) from None


def _import(batch: BlobWriter, index: int, uri: str, settings: Settings) -> BlobInfo:
    try:
        return import_uri(uri, batch, settings)
    except UriImportError as exc:
        refused = isinstance(exc, ImportRefused)
        raise ImageNotImported(index, exc.code, exc.message, refused) from None
