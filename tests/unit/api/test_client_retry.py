"""The client retries what is transient (503 with Retry-After, a dropped connection) and never
sends an upload twice: after a failed upload request it asks the job what it holds."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from api.client import MedflowClient, MedflowError, transient


class FakeApi(BaseHTTPRequestHandler):
    """Scripted answers: ``plan`` is a list of actions, one per request, then 200s."""

    plan: list[str] = []
    stored: list[str] = []
    requests: list[str] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.requests.append(f"GET {self.path}")
        if self._scripted():
            return
        if "/results" in self.path:
            self._json(200, {"items": [{"ref": ref} for ref in self.stored], "next": None})
        else:
            self._json(200, {"id": "j", "status": "open"})

    def do_POST(self) -> None:
        self.requests.append(f"POST {self.path}")
        body = self.rfile.read(int(self.headers["Content-Length"]))
        action = self.plan.pop(0) if self.plan else "ok"
        if action == "503":
            self._json(503, {"error": {"code": "UNAVAILABLE", "message": "busy"}}, "0")
            return
        self.stored += re.findall(r'filename="([^"]+)"', body.decode("latin-1"))
        if action == "drop":  # stored, then the connection dies before the answer
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self._json(201, {"id": "j"})

    def _scripted(self) -> bool:
        if self.plan and self.plan[0] == "503":
            self.plan.pop(0)
            self._json(503, {"error": {"code": "UNAVAILABLE", "message": "busy"}}, "0.25")
            return True
        return False

    def _json(self, status: int, body: Any, retry_after: str | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def api() -> Iterator[str]:
    FakeApi.plan, FakeApi.stored, FakeApi.requests = [], [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def client(url: str, waits: list[float], retries: int = 3) -> MedflowClient:
    return MedflowClient(url, "k", timeout_s=5, retries=retries, sleep=waits.append)


def files(tmp_path: Path, count: int) -> list[Path]:
    paths = [tmp_path / f"{n}.png" for n in range(count)]
    for path in paths:
        path.write_bytes(b"x" * 100)
    return paths


def test_503_is_retried_after_the_servers_retry_after(api: str) -> None:
    FakeApi.plan = ["503", "503"]
    waits: list[float] = []
    assert client(api, waits).get_job("j")["status"] == "open"
    assert waits == [0.25, 0.25]


def test_503_gives_up_after_its_retries(api: str) -> None:
    FakeApi.plan = ["503"] * 5
    with pytest.raises(MedflowError) as raised:
        client(api, [], retries=2).get_job("j")
    assert raised.value.status == 503


def test_upload_dropped_after_storing_is_not_sent_again(api: str, tmp_path: Path) -> None:
    FakeApi.plan = ["drop"]
    waits: list[float] = []
    paths = files(tmp_path, 3)
    client(api, waits).add_files("j", paths)
    assert sorted(FakeApi.stored) == sorted(str(p) for p in paths)  # each once
    assert len(waits) == 1 and 0 < waits[0] <= 1.0  # backoff, no Retry-After on a reset
    assert [r for r in FakeApi.requests if r.startswith("POST")] == ["POST /v1/jobs/j/images"]


def test_upload_refused_with_503_is_sent_again_whole(api: str, tmp_path: Path) -> None:
    FakeApi.plan = ["503"]
    waits: list[float] = []
    paths = files(tmp_path, 2)
    client(api, waits).add_files("j", paths)
    assert sorted(FakeApi.stored) == sorted(str(p) for p in paths)
    assert waits == [0.0]


def test_a_model_no_worker_serves_is_not_retried() -> None:
    assert transient(MedflowError(503, "UPLOADS_BUSY", "busy", retry_after_s=2))
    assert not transient(MedflowError(503, "MODEL_NOT_SERVED", "no worker", retry_after_s=30))


def test_a_key_over_its_uploads_is_retried_but_not_an_unmeetable_deadline() -> None:
    assert transient(MedflowError(429, "UPLOADS_PER_KEY", "busy", retry_after_s=2))
    assert not transient(MedflowError(429, "DEADLINE_UNMEETABLE", "too late"))
