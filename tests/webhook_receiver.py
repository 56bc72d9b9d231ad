"""A real webhook receiver for the tests: an HTTP server on a free loopback port, in a thread.

It keeps every request it was sent (even those it refused), checks each one's signature with
the helper receivers are told to use (``messages.webhook_signature.verify``), and answers from a
script: ``fail_next(n, status)`` makes the next ``n`` requests get ``status`` (500, 302 ...),
and ``HANG`` as a status keeps the request unanswered (a sender killed mid-request) until stop.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from messages.webhook_signature import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    SignatureError,
    verify,
)

HANG = 0  # a scripted "status": never answer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    signature_ok: bool

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    @property
    def event_id(self) -> str:
        return self.headers.get(EVENT_ID_HEADER, "")


class WebhookReceiver:
    def __init__(self, secret: str, redirect_to: str | None = None) -> None:
        self.secret = secret
        self.redirect_to = redirect_to  # the Location of a scripted 30x answer
        self.received: list[Received] = []
        self._script: list[int] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, count: int, status: int = 500) -> None:
        with self._lock:
            self._script.extend([status] * count)

    def for_job(self, job_id: str) -> list[Received]:
        return [r for r in list(self.received) if r.json["data"]["job_id"] == job_id]

    def accepted_per_event(self, job_id: str) -> Counter[str]:
        """Per event id, how many times it was sent and acknowledged (2xx)."""
        return Counter(r.event_id for r in self.for_job(job_id) if r.answered == 200)

    def _answer(self) -> int:
        with self._lock:
            return self._script.pop(0) if self._script else 200

    def _record(self, path: str, headers: dict[str, str], body: bytes, status: int) -> None:
        try:
            verify(self.secret, headers.get(SIGNATURE_HEADER), body)
            ok = True
        except SignatureError:
            ok = False
        with self._lock:
            self.received.append(Received(path, headers, body, status, ok))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver._answer()
                receiver._record(self.path, dict(self.headers.items()), body, status)
                if status == HANG:
                    receiver._stopping.wait(60)
                    self.close_connection = True
                    return
                self.send_response(status)
                if 300 <= status < 400 and receiver.redirect_to:
                    self.send_header("Location", receiver.redirect_to)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the test reads self.received

        return Handler
