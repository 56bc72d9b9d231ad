"""Spools: blobs on their way in, hashed as they are written, stored afterwards by key.

An upload request receives each file part into a spool, and all its spools exist until the
request stores them. A spool in a temp file therefore closes its file descriptor once its part
has ended (``end()``) and opens the file again only for the length of each read: a request of
20,000 small parts once held 20,000 descriptors and failed with EMFILE (issue 9); now it holds
one, the part being received.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

SPOOL_PREFIX = ".tmp-"  # FileSpool's temp files in the directory they are made in


@dataclass(frozen=True)
class BlobInfo:
    key: str  # sha256 of the content, hex
    size: int


class BlobTooLarge(ValueError):
    """The content exceeds the size limit; nothing was stored."""

    code = "FILE_TOO_LARGE"

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"content exceeds the limit of {max_bytes} bytes")
        self.max_bytes = max_bytes


class Spool:
    """A blob on its way in, hashed as it is written; a store or a batch stores it afterwards.

    Append-only until stored (writes after a read or a seek would break the hash). Bytes past
    ``max_bytes`` are counted and dropped instead of raising: Werkzeug's form parser writes into
    spools and turns a ValueError into an empty form, so the limit is enforced on storing.
    """

    def __init__(self, file: IO[bytes], max_bytes: int | None = None) -> None:
        self.file = file
        self.max_bytes = max_bytes
        self.size = 0
        self._digest = hashlib.sha256()

    @property
    def too_large(self) -> bool:
        return self.max_bytes is not None and self.size > self.max_bytes

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if not self.too_large:
            self._digest.update(data)
            self.file.write(data)
        return len(data)

    def end(self) -> None:
        """No more bytes will come: release what only writing needs (nothing, in memory)."""

    def info(self) -> BlobInfo:
        if self.too_large:
            raise BlobTooLarge(self.max_bytes or 0)
        return BlobInfo(self._digest.hexdigest(), self.size)

    @contextmanager
    def reader(self) -> Iterator[IO[bytes]]:
        """The content from its first byte, as a file (for an upload to S3)."""
        self.file.seek(0)
        yield self.file

    def read(self, size: int = -1) -> bytes:
        return self.file.read(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileSpool(Spool):
    """A spool in a named temp file in ``root`` (in a file store's root, storing it is a rename).

    After ``end()`` the file is closed; each read opens it, reads from the spool's position and
    closes it again, so an ended spool holds no file descriptor however long it waits.
    """

    def __init__(self, root: Path, max_bytes: int | None) -> None:
        fd, name = tempfile.mkstemp(prefix=SPOOL_PREFIX, dir=root)
        super().__init__(os.fdopen(fd, "w+b"), max_bytes)
        self.path = Path(name)
        self._ended = False
        self._position = 0  # of the next read, once ended
        # Werkzeug drops the spools of a parse that fails half way without closing them.
        self._remove = weakref.finalize(self, unlink, self.path)

    def end(self) -> None:
        if not self._ended:
            self._position = self.file.tell()
            self.file.close()
            self._ended = True

    @contextmanager
    def reader(self) -> Iterator[IO[bytes]]:
        self.end()
        with open(self.path, "rb") as file:
            yield file

    def read(self, size: int = -1) -> bytes:
        if not self._ended:
            return self.file.read(size)
        with open(self.path, "rb") as file:
            file.seek(self._position)
            data = file.read(size)
        self._position += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if not self._ended:
            return self.file.seek(offset, whence)
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position}.get(whence)
        if base is None:  # SEEK_END: what the file holds (bytes past the limit were dropped)
            base = self.path.stat().st_size
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position if self._ended else self.file.tell()

    def flush(self) -> None:
        if not self._ended:
            self.file.flush()

    def detach(self) -> Path:
        """Close the file and hand it over: the caller now renames or removes it."""
        self.end()
        self._remove.detach()
        return self.path

    def close(self) -> None:
        self.end()
        self._remove()


def unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
