"""Multipart uploads through the API: byte-exact blobs, synced before their rows commit, and no
temp file left behind by a refused or broken request."""

from __future__ import annotations

import gc
import io
import os
import random
import resource
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select
from werkzeug.test import EnvironBuilder, run_wsgi_app

from api.app import create_app
from db.models import Image
from db.session import session_scope
from storage.blobstore import FileBlobStore, Spool
from tests.integration.api.conftest import MODEL, PNG
from tests.unit.storage.test_blob_batch import FsyncLog, inode


def form(payloads: list[bytes], **fields: str) -> dict[str, Any]:
    files = [(io.BytesIO(p), f"scan-{i}.png") for i, p in enumerate(payloads)]
    return {"model": MODEL, **fields, "files": files}


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_uploads_round_trip_byte_exact(client, keys, sessions, env):
    rng = random.Random(7)
    # Sizes around the 256 KiB read, bytes that look like a boundary, the same file twice.
    first = [PNG + rng.randbytes(n) for n in (1, 262_135, 262_137, 1_300_000)]
    first += [b"\r\n--" * 5000, first[1]]
    second = [PNG + rng.randbytes(600_000), first[0]]
    auth = keys.auth("submitter")
    opened = client.post("/v1/jobs", data=form(first, seal="false"), headers=auth)
    assert opened.status_code == 202, opened.json
    added = client.post(f"{opened.json['url']}/images", data=form(second), headers=auth)
    assert added.status_code == 200, added.json

    with session_scope(sessions) as session:
        images = session.scalars(select(Image).order_by(Image.position)).all()
        assert [env.blobs.get(image.blob_key) for image in images] == first + second
        keys_stored = {image.blob_key for image in images}
    # Each distinct content once, and no temp file left.
    assert stored_files(env.blobs.root) == sorted(env.blobs.path(k) for k in keys_stored)


def test_rows_are_flushed_only_after_their_blobs_are_synced(app, client, keys, env, monkeypatch):
    fsyncs = FsyncLog(env.blobs)
    monkeypatch.setattr(os, "fsync", fsyncs)
    checked: list[str] = []

    def check(session: Any, *_: Any) -> None:
        for row in session.new:
            if isinstance(row, Image):
                path = env.blobs.path(row.blob_key)
                assert ("file", row.blob_key, False) in fsyncs.files()
                assert {inode(path.parent), inode(env.blobs.root)} <= set(fsyncs.dirs())
                checked.append(row.blob_key)

    sessions = app.extensions["medflow"].sessions
    event.listen(sessions, "before_flush", check)
    try:
        payloads = [PNG + b"1" * 300_000, PNG + b"2" * 300_000]
        response = client.post("/v1/jobs", data=form(payloads), headers=keys.auth("submitter"))
    finally:
        event.remove(sessions, "before_flush", check)
    assert response.status_code == 202, response.json
    assert len(checked) == 2


def test_too_large_upload_is_413_and_leaves_nothing(app, client, keys, env):
    services = app.extensions["medflow"]
    services.settings = replace(
        services.settings, limits=replace(services.settings.limits, max_bytes=1000)
    )
    services.intake = replace(services.intake, settings=services.settings)  # it spools and stores
    payloads = [PNG + b"ok", PNG + b"x" * 2000, PNG + b"late"]
    response = client.post("/v1/jobs", data=form(payloads), headers=keys.auth("submitter"))
    assert response.status_code == 413
    assert response.json["error"]["code"] == "FILE_TOO_LARGE"
    assert response.json["error"]["details"] == {"index": 1, "max_bytes": 1000}
    assert "scan" not in response.json["error"]["message"]  # file names may be PHI
    assert stored_files(env.blobs.root) == []  # the file before it was not stored either


def test_unknown_model_leaves_no_temp_file(client, keys, env):
    body = form([PNG + b"a" * 300_000], model="nope:9")
    response = client.post("/v1/jobs", data=body, headers=keys.auth("submitter"))
    assert response.status_code == 404
    assert stored_files(env.blobs.root) == []  # the spool went with the request


def test_client_gone_mid_upload_leaves_no_temp_file(app, keys, env, monkeypatch):
    body = form([PNG + b"a" * 300_000, PNG + b"b" * 300_000])
    environ = EnvironBuilder("/v1/jobs", method="POST", data=body, headers=keys.auth("submitter"))
    environ = environ.get_environ()
    data = environ["wsgi.input"].read()
    environ["wsgi.input"] = io.BytesIO(data[:-200_000])  # announced, but never sent
    spools: list[Spool] = []
    original = FileBlobStore.spool
    monkeypatch.setattr(
        FileBlobStore, "spool", lambda *a: spools.append(original(*a)) or spools[-1]
    )

    _, status, _ = run_wsgi_app(app, environ, buffered=True)

    assert status.startswith("400")
    assert len(spools) == 2 and spools[1].path.exists()  # dropped by the parser, not closed
    spools.clear()
    gc.collect()
    assert stored_files(env.blobs.root) == []


def highest_open_fd() -> int:
    return max(int(fd) for fd in os.listdir("/proc/self/fd"))


def test_many_parts_under_a_low_descriptor_limit(client, keys, sessions):
    # About 20,000 parts once took as many descriptors (500 EMFILE): a spool now closes its file
    # when its part ends. 400 parts under a limit 64 above what is open already.
    payloads = [PNG + i.to_bytes(2, "big") for i in range(400)]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest_open_fd() + 64, hard))
    try:
        response = client.post("/v1/jobs", data=form(payloads), headers=keys.auth("submitter"))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert response.status_code == 202, response.json
    with session_scope(sessions) as session:
        assert session.scalar(select(func.count()).select_from(Image)) == 400


def test_parts_over_the_setting_are_refused_with_413(env, keys):
    app = create_app(replace(env.settings, max_form_parts=4))  # model + 3 files
    auth = keys.auth("submitter")
    response = app.test_client().post("/v1/jobs", data=form([PNG] * 4), headers=auth)
    assert response.status_code == 413
    assert response.json["error"]["code"] == "REQUEST_TOO_LARGE"
    assert response.json["error"]["details"] == {"max_parts": 4}
    assert stored_files(env.blobs.root) == []
    assert app.test_client().post("/v1/jobs", data=form([PNG] * 3), headers=auth).status_code == 202
