"""Reading what went through Redis: kombu messages decoded, MONITOR captured in a thread, and
a search for identifiers that also looks inside base64 (kombu's message bodies)."""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections.abc import Sequence
from typing import Any

import redis

# Raw Redis messages -----------------------------------------------------------------------------


def decode_message(raw: bytes | str) -> dict[str, Any]:
    """A kombu Redis message -> {"task", "id", "args", "kwargs", "text"} (body decoded)."""
    envelope = json.loads(raw)
    body = envelope["body"]
    if envelope.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body).decode()
    decoded = json.loads(body)
    args, kwargs = (decoded[0], decoded[1]) if isinstance(decoded, list) else ([], {})
    headers = envelope.get("headers", {})
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    return {
        "task": headers.get("task"),
        "id": headers.get("id"),
        "args": args,
        "kwargs": kwargs,
        "text": text + "\n" + body,
    }


def queue_messages(client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    """Messages waiting in ``queue``, in consumption order (kombu LPUSHes, BRPOPs the tail)."""
    return [decode_message(raw) for raw in reversed(client.lrange(queue, 0, -1))]


def unacked_messages(client: redis.Redis) -> list[dict[str, Any]]:
    """Messages delivered but not acked yet (kombu keeps [message, exchange, key] per tag)."""
    found = []
    for raw in client.hvals("unacked"):
        message, _exchange, _key = json.loads(raw)
        found.append(decode_message(json.dumps(message)))
    return found


# Searching for identifiers ----------------------------------------------------------------------

_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")


def expand_encodings(text: str) -> str:
    """``text`` plus every base64 run in it decoded (kombu bodies are base64), recursively."""
    pieces = [text]
    frontier = [text]
    for _ in range(3):  # an envelope inside an envelope (unacked) is as deep as it gets
        found = []
        for piece in frontier:
            for run in _BASE64_RUN.findall(piece):
                decoded = _b64_text(run)
                if decoded:
                    found.append(decoded)
        pieces += found
        frontier = found
        if not found:
            break
    return "\n".join(pieces)


def _b64_text(run: str) -> str | None:
    padded = run + "=" * (-len(run) % 4)
    try:
        data = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None
    text = data.decode("utf-8", errors="replace")
    printable = sum(ch.isprintable() or ch.isspace() for ch in text)
    return text if text and printable / len(text) > 0.9 else None


def find_needles(text: str, needles: Sequence[str], where: str) -> list[str]:
    """Each occurrence (case-insensitive) of a needle in ``text``, with context, for a report."""
    hits = []
    lowered = text.lower()
    for needle in needles:
        start = lowered.find(needle.lower())
        if start >= 0:
            context = text[max(0, start - 80) : start + len(needle) + 80].replace("\n", " ")
            hits.append(f"{where}: {needle!r} in ...{context}...")
    return hits


class RedisMonitor:
    """Every command the Redis server runs on one database, captured by MONITOR in a thread."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.db = int(self.client.connection_pool.connection_kwargs.get("db", 0))
        self.commands: list[str] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="redis-monitor", daemon=True)

    def __enter__(self) -> RedisMonitor:
        self._thread.start()
        assert self._ready.wait(10), "MONITOR did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.client.ping()  # one more command on the server wakes the listener up
        self._thread.join(10)
        self.client.close()

    def _run(self) -> None:
        with self.client.monitor() as monitor:
            self._ready.set()
            for event in monitor.listen():
                if event.get("db") == self.db:
                    self.commands.append(str(event.get("command", "")))
                if self._stop.is_set():
                    return

    def text(self) -> str:
        return "\n".join(self.commands).replace('\\"', '"')
