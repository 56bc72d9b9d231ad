"""Test helper: store bytes in a blob store (the service itself only stores streams and spools)."""

from __future__ import annotations

import io
from typing import Any

from storage.blobstore import BlobInfo


def put_bytes(store: Any, data: bytes) -> BlobInfo:
    return store.put_stream(io.BytesIO(data))
