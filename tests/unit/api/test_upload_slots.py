"""Uploads hold at most UPLOAD_SLOTS of a process's request threads; reads never wait for them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from api import upload_slots
from api.errors import register_error_handlers
from api.stack import API_THREADS
from api.upload_slots import UPLOAD_SLOTS, upload_slot


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setattr(upload_slots, "WAIT_S", 0.05)
    app = Flask(__name__)
    register_error_handlers(app)
    app.add_url_rule("/up", "up", upload_slot(lambda: "stored"), methods=["POST"])
    yield app


def test_slots_leave_threads_for_reads() -> None:
    assert 1 <= UPLOAD_SLOTS < API_THREADS


def test_an_upload_beyond_the_slots_is_told_to_retry(app: Flask) -> None:
    client = app.test_client()
    files = {"files": (b"x", "a.png")}
    for _ in range(UPLOAD_SLOTS):
        assert upload_slots._slots.acquire(timeout=1)
    try:
        busy = client.post("/up", data=files, content_type="multipart/form-data")
        json_body = client.post("/up", json={"images": []})  # no files: no slot needed
    finally:
        for _ in range(UPLOAD_SLOTS):
            upload_slots._slots.release()
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "2"
    assert busy.get_json()["error"]["code"] == "UPLOADS_BUSY"
    assert json_body.status_code == 200
    assert client.post("/up", data=files, content_type="multipart/form-data").status_code == 200
