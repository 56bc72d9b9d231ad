"""Storing one image of a submission as a blob, before any transaction opens.

The intake service (``Intake.store_files``, ``Intake.import_uris``) writes a submission in one
batch of the blob store: on return every blob is durable, so the rows naming them may commit.
Blobs are content-addressed: an orphan from a submission that fails later is harmless, and a
retry reuses it. Nothing here logs or raises a ref, a file name or a URI.
"""

from __future__ import annotations

from typing import IO

from config.settings import Settings
from intake.errors import FileTooLarge, ImageNotImported
from storage.blobstore import BlobInfo, BlobTooLarge, BlobWriter, Spool
from storage.imports import ImportRefused, UriImportError, import_uri

Stored = list[tuple[str, BlobInfo]]  # (ref, blob) in submission order


def put_file(batch: BlobWriter, index: int, stream: IO[bytes], max_bytes: int) -> BlobInfo:
    try:
        if isinstance(stream, Spool):
            return batch.put_spool(stream)
        return batch.put_stream(stream, max_bytes)
    except BlobTooLarge as exc:
        raise FileTooLarge(index, exc.max_bytes) from None


def import_one(batch: BlobWriter, index: int, uri: str, settings: Settings) -> BlobInfo:
    try:
        return import_uri(uri, batch, settings)
    except UriImportError as exc:
        refused = isinstance(exc, ImportRefused)
        raise ImageNotImported(index, exc.code, exc.message, refused) from None
