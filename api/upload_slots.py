"""Uploads take at most half of a process's request threads, so status polls stay fast.

A multipart upload holds its gthread thread for as long as the client sends (seconds to
minutes); ten at once took every thread of both processes and polls waited behind them (p99
1.8 s). An upload that finds no free slot within a second is refused with 503
``UPLOADS_BUSY`` and ``Retry-After``; `medflow submit` (api.client) backs off and retries.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from flask import request

from api.errors import ApiError

F = TypeVar("F", bound=Callable[..., Any])

# Of api.stack.API_THREADS (8) per process; the others always remain for reads.
UPLOAD_SLOTS = 4
WAIT_S = 1.0
RETRY_AFTER_S = 2

_slots = threading.BoundedSemaphore(UPLOAD_SLOTS)


def upload_slot(view: F) -> F:
    """Run ``view`` holding an upload slot when the request carries files (multipart)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if request.mimetype != "multipart/form-data":
            return view(*args, **kwargs)
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

    return wrapper  # type: ignore[return-value]
