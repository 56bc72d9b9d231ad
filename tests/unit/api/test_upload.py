"""api.upload: multipart bodies read 256 KiB at a time, file parts received into blob spools."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from types import SimpleNamespace

from flask import Flask, request
from werkzeug.http import parse_options_header

from api.client import MultipartBody
from api.upload import READ_SIZE, UploadFormParser, UploadRequest, read_size
from db.blobstore import FileBlobStore, FileSpool
from db.settings import Settings

FLASK_FORM_MEMORY = 500_000  # Flask's default max_form_memory_size


class RecordingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.sizes: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.sizes.append(-1 if size is None else size)
        return super().read(size)


def test_read_size_stays_within_the_form_memory_limit() -> None:
    assert read_size(None) == READ_SIZE == 256 * 1024
    assert read_size(10 * 1024 * 1024) == READ_SIZE
    # Werkzeug refuses one read over the limit, even inside a file part.
    assert read_size(FLASK_FORM_MEMORY) == FLASK_FORM_MEMORY // 2


def test_parser_reads_in_big_steps_and_keeps_the_bytes(tmp_path: Path) -> None:
    payloads = [os.urandom(700_000) + b"\r\n--" + os.urandom(900_000), b"\r\n--x\r\n" * 1000]
    paths = []
    for index, payload in enumerate(payloads):
        paths.append(tmp_path / f"{index}.png")
        paths[-1].write_bytes(payload)
    body = MultipartBody(paths)
    data = b"".join(body)
    mimetype, options = parse_options_header(body.headers()["Content-Type"])
    stream = RecordingStream(data)

    parser = UploadFormParser(max_form_memory_size=FLASK_FORM_MEMORY)
    _, _, parts = parser.parse(stream, mimetype, len(data), options)

    assert [part.read() for part in parts.getlist("files")] == payloads
    assert max(stream.sizes) == read_size(FLASK_FORM_MEMORY) > 64 * 1024  # Werkzeug's default


def test_file_parts_land_in_spools_of_the_store(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    settings = Settings()
    app = Flask(__name__)
    app.request_class = UploadRequest
    app.extensions["medflow"] = SimpleNamespace(blobs=store, settings=settings)
    seen: list[tuple[bool, int | None, str]] = []

    @app.post("/")
    def receive() -> str:
        for upload in request.files.getlist("files"):
            spool = upload.stream
            assert isinstance(spool, FileSpool)
            seen.append((spool.path.parent == store.root, spool.max_bytes, spool.info().key))
        return "ok"

    payloads = [b"first" * 100_000, b"second"]
    files = [(io.BytesIO(p), f"{i}.png") for i, p in enumerate(payloads)]
    assert app.test_client().post("/", data={"files": files}).status_code == 200

    max_bytes = settings.limits.max_bytes
    assert seen == [(True, max_bytes, hashlib.sha256(p).hexdigest()) for p in payloads]
    assert list(store.root.iterdir()) == []  # spools never stored are removed with the request
