"""Uploads take at most half of a process's request threads, and one key at most a few of them.

A multipart upload holds its gthread thread for as long as the client sends (seconds to
minutes); ten at once took every thread of both processes and polls waited behind them (p99
1.8 s). An upload that finds no free slot within a second is refused with 503
``UPLOADS_BUSY`` and ``Retry-After``; `medflow submit` (api.client) backs off and retries.

One API key may hold at most ``MEDFLOW_MAX_UPLOADS_PER_KEY`` of a process's uploads (issue 9:
18 stalled bodies from one key took every thread): past it, 429 ``UPLOADS_PER_KEY`` with
``Retry-After`` at once, before a slot is waited for, so other keys keep theirs.
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from flask import request

from api.auth import current_caller
from api.errors import ApiError
from api.extensions import services

F = TypeVar("F", bound=Callable[..., Any])

# Of api.stack.API_THREADS (8) per process; the others always remain for reads.
UPLOAD_SLOTS = 4
WAIT_S = 1.0
RETRY_AFTER_S = 2

_slots = threading.BoundedSemaphore(UPLOAD_SLOTS)


class KeyUploads:
    """Uploads in progress per API key id, in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: Counter[int] = Counter()

    @contextmanager
    def hold(self, key_id: int, cap: int) -> Iterator[None]:
        with self._lock:
            if self._held[key_id] >= cap:
                raise ApiError(
                    "UPLOADS_PER_KEY",
                    f"this API key has {cap} uploads in progress here, its limit; retry shortly",
                    429,
                    {"max_uploads_per_key": cap},
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                )
            self._held[key_id] += 1
        try:
            yield
        finally:
            with self._lock:
                self._held[key_id] -= 1
                if not self._held[key_id]:
                    del self._held[key_id]


_per_key = KeyUploads()


def upload_slot(view: F) -> F:
    """Run ``view`` holding an upload slot when the request carries files (multipart)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if request.mimetype != "multipart/form-data":
            return view(*args, **kwargs)
        who = current_caller()  # None only for a view without @require (tests)
        if who is None:
            return _in_slot(view, *args, **kwargs)
        with _per_key.hold(who.id, services().settings.max_uploads_per_key):
            return _in_slot(view, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _in_slot(view: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if not _slots.acquire(timeout=WAIT_S):
        raise ApiError(
            "UPLOADS_BUSY",
            "this API process is receiving as many uploads as it takes; retry shortly",
            503,
            {"slots": UPLOAD_SLOTS},
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    try:
        return view(*args, **kwargs)
    finally:
        _slots.release()
