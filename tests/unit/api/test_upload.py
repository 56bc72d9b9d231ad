"""api.upload: file parts received into blob spools; a body the reader cannot follow is a 400, not
an empty form; the raw input is read when the server ends it at Content-Length itself."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from types import SimpleNamespace

from flask import Flask, request

from api.client import MultipartBody
from api.errors import register_error_handlers
from api.upload import UploadRequest
from config.settings import Settings
from intake.service import Intake
from storage.blobstore import FileBlobStore, FileSpool


def services_of(store: FileBlobStore, settings: Settings) -> SimpleNamespace:
    # What api.upload reads: the intake service, which makes the spools (it never sends here).
    return SimpleNamespace(settings=settings, intake=Intake(settings, store, None, None))


def upload_app(store: FileBlobStore) -> Flask:
    app = Flask(__name__)
    app.request_class = UploadRequest
    app.extensions["medflow"] = services_of(store, Settings())
    register_error_handlers(app)
    return app


def test_file_parts_land_in_spools_of_the_store(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    settings = Settings()
    app = Flask(__name__)
    app.request_class = UploadRequest
    app.extensions["medflow"] = services_of(store, settings)
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


def test_a_malformed_body_is_a_400_naming_the_rule(tmp_path: Path) -> None:
    app = upload_app(FileBlobStore(tmp_path / "blobs"))

    @app.post("/")
    def receive() -> str:
        return str(len(request.files))

    headers = {"Content-Type": "multipart/form-data; boundary=abc"}
    cut = b'--abc\r\nContent-Disposition: form-data; name="files"; filename="a"\r\n\r\nxx'
    response = app.test_client().post("/", data=cut, headers=headers)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "MALFORMED_MULTIPART"
    assert "ends inside a part" in response.json["error"]["message"]


def test_the_raw_input_is_read_when_the_server_terminates_it(tmp_path: Path) -> None:
    app = upload_app(FileBlobStore(tmp_path / "blobs"))
    payload = tmp_path / "scan.png"
    payload.write_bytes(b"\x89PNG" + os.urandom(1000))
    body = MultipartBody([payload])
    data = b"".join(body)
    for terminated, raw in ((True, True), (False, False)):
        overrides = {"wsgi.input_terminated": True} if terminated else {}
        with app.test_request_context(
            "/", method="POST", data=data, headers=body.headers(), environ_overrides=overrides
        ):
            stream = request._get_stream_for_parsing()
            assert (stream is request.environ["wsgi.input"]) is raw
            (upload,) = request.files.getlist("files")
            assert upload.read() == payload.read_bytes()


def open_spools(root: Path) -> int:
    """File descriptors of this process open on spools in ``root``."""
    fds = Path("/proc/self/fd")
    targets = []
    for fd in fds.iterdir():
        try:
            targets.append(os.readlink(fd))
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor)
    return sum(1 for t in targets if t.startswith(str(root)))


def test_a_request_of_many_parts_holds_one_open_spool_at_a_time(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    app = upload_app(store)
    most_open: list[int] = []
    original = store.spool

    def counting_spool(max_bytes: int | None = None) -> FileSpool:
        most_open.append(open_spools(store.root))  # before this part's spool opens
        return original(max_bytes)

    store.spool = counting_spool  # type: ignore[method-assign]

    @app.post("/")
    def receive() -> str:
        uploads = request.files.getlist("files")
        most_open.append(open_spools(store.root))
        first = uploads[0].read()  # read after the part ended: opened and closed again
        most_open.append(open_spools(store.root))
        return f"{len(uploads)} {first!r}"

    files = [(io.BytesIO(b"px%d" % i), f"{i}.png") for i in range(300)]
    response = app.test_client().post("/", data={"files": files})
    assert response.status_code == 200 and response.text == "300 b'px0'"
    assert len(most_open) == 302 and max(most_open) == 0  # the previous part's spool is closed


def test_parts_over_the_setting_are_a_413(tmp_path: Path) -> None:
    app = upload_app(FileBlobStore(tmp_path / "blobs"))
    app.config["MAX_FORM_PARTS"] = Settings(max_form_parts=5).max_form_parts

    @app.post("/")
    def receive() -> str:
        return str(len(request.files.getlist("files")))

    files = [(io.BytesIO(b"x"), f"{i}.png") for i in range(6)]
    response = app.test_client().post("/", data={"files": files})
    assert response.status_code == 413
    assert response.json["error"]["code"] == "REQUEST_TOO_LARGE"
    assert response.json["error"]["details"] == {"max_parts": 5}
    files = [(io.BytesIO(b"x"), f"{i}.png") for i in range(5)]
    assert app.test_client().post("/", data={"files": files}).text == "5"
