"""The API's request class: multipart bodies read by ``api.multipart``, files into blob spools.

Each file part is written once, straight into a spool of the blob store (hashed as it arrives,
so storing it is a rename), and the body is read in 1 MiB steps. Werkzeug's own parser copied
each byte several times and, for a body it could not read, silently gave an empty form; here
such a body is a 400 (``MALFORMED_MULTIPART``) and a body over the form limits a 413.
"""

from __future__ import annotations

from typing import IO, Any, cast

from flask import Request
from werkzeug.datastructures import FileStorage
from werkzeug.formparser import FormDataParser
from werkzeug.wsgi import LimitedStream

from api.errors import ApiError
from api.extensions import services
from api.multipart import FormLimits, FormTooLarge, MultipartError, read_form

DEFAULT_MAX_PARTS = 1000  # Werkzeug's default, when the app sets none
DEFAULT_MAX_FIELD_BYTES = 500_000  # Flask's default max_form_memory_size


class UploadFormParser(FormDataParser):
    def _parse_multipart(
        self, stream: IO[bytes], mimetype: str, content_length: int | None, options: Any
    ) -> Any:
        limits = FormLimits(
            max_parts=self.max_form_parts or DEFAULT_MAX_PARTS,
            max_field_bytes=self.max_form_memory_size or DEFAULT_MAX_FIELD_BYTES,
        )
        boundary = options.get("boundary", "").encode("latin-1")
        try:
            form = read_form(stream, boundary, new_spool, limits)
        except FormTooLarge as exc:
            raise ApiError("REQUEST_TOO_LARGE", str(exc), 413, exc.limit) from None
        except MultipartError as exc:
            # Werkzeug would swallow a ValueError into an empty form: this is not one.
            raise ApiError("MALFORMED_MULTIPART", str(exc), 400) from None
        files = []
        for part in form.files:
            part.sink.seek(0)
            # A Spool reads, seeks and closes like the file FileStorage expects.
            sink = cast(IO[bytes], part.sink)
            upload = FileStorage(sink, part.filename, part.name, part.content_type)
            files.append((part.name, upload))
        return stream, self.cls(form.fields), self.cls(files)


def new_spool() -> Any:
    # The spool drops bytes past the limit; intake refuses the file (413) when it stores it.
    return services().intake.new_spool()


class UploadRequest(Request):
    form_data_parser_class = UploadFormParser

    def _get_stream_for_parsing(self) -> IO[bytes]:
        stream = super()._get_stream_for_parsing()  # a declared length over the limit: 413
        # A server that ends the body at its Content-Length itself (gunicorn sets
        # wsgi.input_terminated) needs no LimitedStream around it, which copies every byte once
        # more: a tenth of the API's CPU for an upload.
        terminated = self.environ.get("wsgi.input_terminated") and self.content_length is not None
        if terminated and isinstance(stream, LimitedStream):
            return cast(IO[bytes], self.environ["wsgi.input"])
        return stream
