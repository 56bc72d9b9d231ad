"""A request body that stops arriving is cut: 408 ``BODY_READ_TIMEOUT`` (issue 9).

A gthread worker reads a body in the request's thread, and a read of the socket waited for ever:
18 stalled upload bodies from one key held every request thread and ``/healthz`` timed out. Now,
while the app runs, the client socket (``environ["gunicorn.socket"]``) has a timeout of
``MEDFLOW_BODY_READ_TIMEOUT_S``, and a read that finds no byte for that long raises
:class:`BodyReadTimeout`, answered 408 with ``Connection: close``. The timeout is between two
reads (as nginx's ``client_body_timeout``), never on the whole upload: a slow link that keeps
sending is never cut. The connection is closed after the answer because the rest of that body,
should it come, could not be told from a next request.

The answer's own write goes without a timeout (it is restored before gunicorn sends), as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from api.errors import ApiError

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_server_request = threading.local()  # gunicorn's request object, for this thread's request


def bind_server_request(req: Any) -> None:
    """gunicorn's pre_request hook (api.gunicorn_conf): the request this thread now serves."""
    _server_request.req = req


class BodyReadTimeout(ApiError):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            "BODY_READ_TIMEOUT",
            f"the request body stopped arriving: nothing for {seconds:g} s",
            408,
            {"timeout_s": seconds},
            headers={"Connection": "close"},
        )


class TimedInput:
    """``wsgi.input`` whose reads turn the socket's timeout into :class:`BodyReadTimeout`."""

    def __init__(self, stream: IO[bytes], seconds: float) -> None:
        self._stream, self._seconds = stream, seconds

    def read(self, size: int = -1) -> bytes:
        return self._guard(self._stream.read, size)

    def readline(self, size: int = -1) -> bytes:
        return self._guard(self._stream.readline, size)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = self._guard(self._stream.readlines, hint)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def _guard(self, read: Callable[[int], Any], size: int) -> Any:
        try:
            return read(size)
        except TimeoutError:
            _close_after_answer()
            raise BodyReadTimeout(self._seconds) from None


class BodyTimeout:
    """WSGI middleware: a timeout on the client socket while the app reads the request."""

    def __init__(self, app: WsgiApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        if sock is None:  # another server (tests' clients, the dev server): its own rules
            return self.app(environ, start_response)
        previous = sock.gettimeout()
        sock.settimeout(self.seconds)
        environ["wsgi.input"] = TimedInput(environ["wsgi.input"], self.seconds)
        try:
            return self.app(environ, start_response)
        finally:
            sock.settimeout(previous)


def _close_after_answer() -> None:
    # gunicorn drops a Connection header set by the app (hop-by-hop) and decides itself; a
    # request marked must_close makes it answer "Connection: close" and close.
    req = getattr(_server_request, "req", None)
    if req is not None:
        req.must_close = True
