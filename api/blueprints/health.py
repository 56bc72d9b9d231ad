"""Liveness and readiness probes (unauthenticated, never rate limited).

``/readyz`` checks what a submission needs end to end: the database, Redis, and at least one live
worker consuming each configured model's queue. Asking the workers costs a broadcast round trip,
so their answer is cached for a few seconds (probes come every few seconds from every replica).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from flask import Blueprint, current_app
from sqlalchemy import text

from api.extensions import services
from workers.queues import infer_queue

bp = Blueprint("health", __name__)

INSPECT_TIMEOUT_S = 1.0
WORKERS_CACHE_S = 5.0


@bp.get("/healthz")
def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    checks = {"database": _database(), "redis": _redis()}
    checks["workers"] = _workers(broker_up=checks["redis"]["ok"])
    ready = all(check["ok"] for check in checks.values())
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    return body, 200 if ready else 503


def _database() -> dict[str, Any]:
    try:
        with services().sessions() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready"; the type is enough to act on
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


def _redis() -> dict[str, Any]:
    try:
        services().redis.ping()
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


def _workers(broker_up: bool) -> dict[str, Any]:
    wanted = [infer_queue(name) for name in services().settings.models]
    if not broker_up:  # no worker can answer, and asking would wait on connection retries
        return {"ok": False, "error": "broker_unavailable", "missing": wanted}
    try:
        consumed = _consumed_queues()
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__, "missing": wanted}
    missing = [queue for queue in wanted if queue not in consumed]
    return {"ok": not missing, "missing": missing, "queues": wanted}


def _consumed_queues() -> frozenset[str]:
    cache = current_app.extensions.setdefault("medflow.worker_queues", _QueueCache())
    return cache.get(services().celery)


class _QueueCache:
    """Queue names some live worker consumes, remembered for WORKERS_CACHE_S (one per app)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at = -WORKERS_CACHE_S
        self._queues: frozenset[str] = frozenset()

    def get(self, celery: Any) -> frozenset[str]:
        with self._lock:  # concurrent probes wait for one broadcast instead of sending several
            if time.monotonic() - self._at >= WORKERS_CACHE_S:
                inspect = celery.control.inspect(timeout=INSPECT_TIMEOUT_S)
                replies = inspect.active_queues() or {}
                self._queues = frozenset(q["name"] for qs in replies.values() for q in qs)
                self._at = time.monotonic()
            return self._queues
