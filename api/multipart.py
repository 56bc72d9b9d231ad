"""A streaming ``multipart/form-data`` reader for image uploads (RFC 7578, RFC 2046 5.1).

An upload job sends gigabytes through here, and on a 2-core machine every CPU second the API
spends is taken from the workers. Werkzeug's parser copies each byte four times or more (into
its buffer, out as a part, a memmove per event) and scans it with a regex besides; here each
byte is scanned once by ``bytes.find`` and handed on as a memoryview slice (no copy) to the
file part's sink, which hashes it and writes it. Text fields (``model``, ``seal``) are kept in
memory, within a limit. A body it cannot read raises MultipartError naming the rule (never a
file name: those can carry PHI).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Protocol

from werkzeug.http import parse_options_header

READ_SIZE = 1024 * 1024
# RFC 2046 5.1.1 says 70, but clients exceed it (Werkzeug's test client: 71, once in 500), and
# Werkzeug's parser takes any length: refuse only what no client needs.
MAX_BOUNDARY = 256
MAX_HEADER_BYTES = 8 * 1024  # one part's header block


class MultipartError(ValueError):
    """The body is not multipart/form-data this reader can follow; the message names the rule."""


class FormTooLarge(MultipartError):
    """More parts, or more text in fields, than the limits allow; ``limit`` names which."""

    def __init__(self, message: str, limit: dict[str, int]) -> None:
        super().__init__(message)
        self.limit = limit


class Sink(Protocol):
    """Where a file part goes: a blob-store spool."""

    def write(self, data: memoryview, /) -> int: ...

    def seek(self, offset: int, /) -> int: ...

    def end(self) -> None:
        """The part is complete: a spool closes its file until it is read (one open at a time)."""


@dataclass
class FilePart:
    name: str
    filename: str
    content_type: str
    sink: Sink


@dataclass
class Form:
    fields: list[tuple[str, str]] = field(default_factory=list)
    files: list[FilePart] = field(default_factory=list)


@dataclass(frozen=True)
class FormLimits:
    max_parts: int
    max_field_bytes: int  # all text fields together, in memory


def read_form(
    stream: IO[bytes], boundary: bytes, new_sink: Callable[[], Sink], limits: FormLimits
) -> Form:
    """Read a whole body from ``stream``; each file part's bytes go to a ``new_sink()``."""
    if not boundary or len(boundary) > MAX_BOUNDARY:
        raise MultipartError(
            f"the multipart boundary is missing or longer than {MAX_BOUNDARY} characters"
        )
    return _Reader(stream, boundary, new_sink, limits).read()


class _Reader:
    """The body as ``buffer[pos:]`` plus what the stream still holds.

    A position instead of slicing off what was consumed: a read of 1 MiB can hold a hundred
    small parts, and slicing after each would copy the rest of the buffer a hundred times.
    """

    def __init__(
        self, stream: IO[bytes], boundary: bytes, new_sink: Callable[[], Sink], limits: FormLimits
    ) -> None:
        self.stream = stream
        self.first = b"--" + boundary
        self.delimiter = b"\r\n--" + boundary  # every delimiter but a leading first one
        self.new_sink = new_sink
        self.limits = limits
        self.buffer = b""
        self.pos = 0
        self.form = Form()
        self.field_bytes = 0

    def read(self) -> Form:
        self._skip_preamble()
        while self._after_delimiter():
            if len(self.form.fields) + len(self.form.files) >= self.limits.max_parts:
                raise FormTooLarge(
                    f"more than {self.limits.max_parts} parts", {"max_parts": self.limits.max_parts}
                )
            name, filename, content_type = self._part_headers()
            if filename is None:
                self._read_field(name)
            else:
                sink = self.new_sink()
                self.form.files.append(FilePart(name, filename, content_type, sink))
                self._copy_part(sink.write)
                sink.end()
        return self.form

    def _fill(self) -> bool:
        """Append the stream's next read to the unconsumed bytes; False at its end."""
        chunk = self.stream.read(READ_SIZE)
        if not chunk:
            return False
        rest = self.buffer[self.pos :] if self.pos < len(self.buffer) else b""
        self.buffer, self.pos = (rest + chunk if rest else chunk), 0
        return True

    def _want(self, count: int) -> bool:
        """Read until ``count`` unconsumed bytes are buffered; False if the body ends first."""
        while len(self.buffer) - self.pos < count:
            if not self._fill():
                return False
        return True

    def _skip_preamble(self) -> None:
        # The first delimiter may open the body or follow a preamble line (RFC 2046 5.1.1).
        self._want(len(self.first))
        if self.buffer.startswith(self.first):
            self.pos = len(self.first)
            return
        while (index := self.buffer.find(self.delimiter, self.pos)) < 0:
            self.pos = max(self.pos, len(self.buffer) - len(self.delimiter))
            if not self._fill():
                raise MultipartError("no multipart boundary in the body")
        self.pos = index + len(self.delimiter)

    def _after_delimiter(self) -> bool:
        """True when a part follows this delimiter; False at the closing ``--``."""
        if not self._want(2):
            raise MultipartError("the body ends inside a boundary")
        if self.buffer.startswith(b"--", self.pos):
            return False  # the epilogue, if any, is ignored
        line_end = self._find(b"\r\n", 1024)
        if self.buffer[self.pos : line_end].strip(b" \t"):  # only padding (RFC 2046 5.1.1)
            raise MultipartError("unexpected bytes after a multipart boundary")
        self.pos = line_end + 2
        return True

    def _part_headers(self) -> tuple[str, str | None, str]:
        self._want(2)
        if self.buffer.startswith(b"\r\n", self.pos):
            raise MultipartError("a part has no Content-Disposition header")
        end = self._find(b"\r\n\r\n", MAX_HEADER_BYTES)
        block = self.buffer[self.pos : end].decode("utf-8", "replace")
        self.pos = end + 4
        headers = {}
        for line in block.split("\r\n"):
            key, colon, value = line.partition(":")
            if not colon:
                raise MultipartError("a part header has no colon")
            headers[key.strip().lower()] = value.strip()
        kind, options = parse_options_header(headers.get("content-disposition", ""))
        if kind != "form-data" or "name" not in options:
            raise MultipartError("a part has no form-data Content-Disposition with a name")
        content_type = headers.get("content-type", "application/octet-stream")
        return options["name"], options.get("filename"), content_type

    def _find(self, marker: bytes, limit: int) -> int:
        """Index of ``marker`` within ``limit`` bytes of the position, reading more as needed."""
        while (index := self.buffer.find(marker, self.pos)) < 0:
            if len(self.buffer) - self.pos > limit or not self._fill():
                raise MultipartError("a part's headers are too long or cut off")
        if index - self.pos > limit:
            raise MultipartError("a part's headers are too long")
        return index

    def _read_field(self, name: str) -> None:
        pieces: list[bytes] = []

        def keep(data: memoryview) -> int:
            self.field_bytes += len(data)
            if self.field_bytes > self.limits.max_field_bytes:
                limit = self.limits.max_field_bytes
                raise FormTooLarge(f"text fields over {limit} bytes", {"max_field_bytes": limit})
            pieces.append(bytes(data))
            return len(data)

        self._copy_part(keep)
        self.form.fields.append((name, b"".join(pieces).decode("utf-8", "replace")))

    def _copy_part(self, write: Callable[[memoryview], int]) -> None:
        """Hand the part's bytes to ``write`` up to the next delimiter, which is consumed."""
        keep = len(self.delimiter) - 1  # a delimiter may straddle two reads
        while True:
            index = self.buffer.find(self.delimiter, self.pos)
            if index >= 0:
                if index > self.pos:
                    write(memoryview(self.buffer)[self.pos : index])
                self.pos = index + len(self.delimiter)
                return
            end = len(self.buffer) - keep
            if end > self.pos:
                write(memoryview(self.buffer)[self.pos : end])
                self.pos = end
            if not self._fill():
                raise MultipartError("the body ends inside a part")
