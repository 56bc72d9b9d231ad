"""One HTTP POST with short timeouts that never follows a redirect (``http.client``, which has
no redirect handling at all, where ``urllib`` and ``requests`` follow 30x by default)."""

from __future__ import annotations

import ssl
from http.client import HTTPConnection, HTTPSConnection
from urllib.parse import urlsplit

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 10.0  # per read: a receiver acks at once and does its work later
MAX_DRAIN_BYTES = 64 * 1024  # read (and drop) at most this much of an answer: never stored


class WebhookDeliveryError(RuntimeError):
    """Not delivered: a non-2xx answer. Its text names the endpoint and status only."""


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    connect_s: float = CONNECT_TIMEOUT_S,
    read_s: float = READ_TIMEOUT_S,
) -> int:
    """POST ``body`` to ``url``; returns the status (a 30x is returned, never followed)."""
    parts = urlsplit(url)
    connection: HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context()
        connection = HTTPSConnection(
            parts.hostname or "", parts.port, timeout=connect_s, context=context
        )
    else:
        connection = HTTPConnection(parts.hostname or "", parts.port, timeout=connect_s)
    try:
        connection.connect()
        if connection.sock is not None:
            connection.sock.settimeout(read_s)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        response.read(MAX_DRAIN_BYTES)
        return response.status
    finally:
        connection.close()
