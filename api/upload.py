"""The API's request class: multipart bodies read in bigger steps, files received into spools.

Werkzeug reads a multipart body 64 KiB at a time and copies each file part into a temp file of
its own, which intake then read back to hash and write into the blob store. Here each file part
is written once, straight into a spool of the blob store (hashed as it arrives, so storing it is
a rename), and the body is read in steps of up to 256 KiB.
"""

from __future__ import annotations

from typing import IO, Any, cast

from flask import Request
from werkzeug.formparser import FormDataParser, MultiPartParser

from api.extensions import services

READ_SIZE = 256 * 1024


class UploadFormParser(FormDataParser):
    def _parse_multipart(
        self, stream: IO[bytes], mimetype: str, content_length: int | None, options: Any
    ) -> Any:
        # Werkzeug's own, but for buffer_size, which FormDataParser does not pass on.
        parser = MultiPartParser(
            stream_factory=self.stream_factory,
            max_form_memory_size=self.max_form_memory_size,
            max_form_parts=self.max_form_parts,
            cls=self.cls,
            buffer_size=read_size(self.max_form_memory_size),
        )
        boundary = options.get("boundary", "").encode("ascii")
        if not boundary:
            raise ValueError("Missing boundary")
        form, files = parser.parse(stream, boundary, content_length)
        return stream, form, files


def read_size(max_form_memory_size: int | None) -> int:
    # Werkzeug refuses one read (plus what its buffer holds) over max_form_memory_size with a
    # 413, although the limit is meant for text fields: Flask's 500 KB would refuse 1 MiB.
    if max_form_memory_size is None:
        return READ_SIZE
    return min(READ_SIZE, max_form_memory_size // 2)


class UploadRequest(Request):
    form_data_parser_class = UploadFormParser

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        # Werkzeug's parser writes each file part here; the spool drops bytes past the limit and
        # intake refuses the file (413) when it stores it.
        state = services()
        return cast(IO[bytes], state.blobs.spool(state.settings.limits.max_bytes))
