"""A real gunicorn API process (gthread, the deployment's config) on a test's settings, and raw
HTTP over sockets to it: what a test client cannot do (stall half way through a body)."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.children import Child, free_port, stop_all, wait_until
from api.stack import API_THREADS, GUNICORN_CONFIG
from api.stack_env import settings_to_env
from config.settings import REPO_ROOT, Settings


class LiveApi:
    """``gunicorn api.wsgi:app`` with one process (the per-key cap is per process)."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "gunicorn", "api.wsgi:app"]
        argv += ["--bind", f"127.0.0.1:{self.port}", "--workers", "1"]
        argv += ["--worker-class", "gthread", "--threads", str(API_THREADS)]
        argv += ["--config", GUNICORN_CONFIG, "--control-socket", str(log.with_suffix(".ctl"))]
        env = {**os.environ, **settings_to_env(settings), "PYTHONPATH": str(REPO_ROOT)}
        self.child = Child("api", argv, env, log)

    def __enter__(self) -> LiveApi:
        self.child.start()
        wait_until(self._answers, [self.child], 60, "the API")
        return self

    def __exit__(self, *exc: object) -> None:
        stop_all([self.child], grace_s=5)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                return True
        except OSError:
            return False

    def send(self, head: str, body: bytes) -> socket.socket:
        """A connection on which ``head`` (request line and headers) and ``body`` are sent."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        sock.sendall(head.encode("latin-1") + b"\r\n" + body)
        return sock


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]
    closed: bool  # the server closed the connection after it
    received_at: float  # time.monotonic() once its head had arrived


def read_answer(sock: socket.socket, timeout_s: float) -> Answer:
    """One HTTP/1.1 response (with a Content-Length) read from ``sock``."""
    sock.settimeout(timeout_s)
    data = b""
    while b"\r\n\r\n" not in data:
        data += _recv(sock)
    received_at = time.monotonic()
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        rest += _recv(sock)
    closed = _closed_after(sock)
    body = json.loads(rest[:length] or b"{}")
    return Answer(int(lines[0].split()[1]), headers, body, closed, received_at)


def _recv(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("the server closed the connection mid-answer")
    return chunk


def _closed_after(sock: socket.socket) -> bool:
    sock.settimeout(2)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def timed_get(port: int, path: str) -> float:
    """Seconds a GET of ``path`` takes (it must answer 200)."""
    started = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        assert response.status == 200
    return time.monotonic() - started
