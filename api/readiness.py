"""What `/readyz` and the serving metrics report, refreshed by a thread, never on a request.

A probe must answer in milliseconds whatever the database, Redis or the workers do: asking the
workers is a broadcast that waits up to a second for replies, and a hung database connection
waits for its timeout. So one daemon thread per API process checks the database and Redis and
asks which queues live workers consume, every ``REFRESH_S``; a request reads the last
:class:`Snapshot`. A snapshot older than ``STALE_S`` (the thread is stuck) counts as not ready.

Readiness is the database and Redis only: the API can take jobs for a model no worker serves
(they wait in its queue). Which models are served, and by how many workers, is reported per
model in the body and as metrics, for an operator and an alert to act on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from flask import Flask

log = logging.getLogger(__name__)

EXTENSION = "medflow.readiness"
REFRESH_S = 2.0
STALE_S = 15.0
INSPECT_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Snapshot:
    at: float  # time.monotonic() when taken
    database: dict[str, Any]
    redis: dict[str, Any]
    workers: dict[str, Any]  # {"ok": bool, "error"?}: whether the broadcast could be made
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    queues: dict[str, int] = field(default_factory=dict)  # live workers per queue consumed

    @property
    def fresh(self) -> bool:
        return time.monotonic() - self.at < STALE_S

    @property
    def ready(self) -> bool:
        return self.fresh and self.database["ok"] and self.redis["ok"]


class ReadinessMonitor:
    """One per app and process; ``start()`` runs ``refresh()`` every REFRESH_S in a thread."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.pid = os.getpid()
        self.snapshot: Snapshot | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()  # the running thread's: a restart makes a new one

    def start(self) -> ReadinessMonitor:
        with self._lock:
            if self._thread is None or self._stopped.is_set():
                self._stopped = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(self._stopped,), name="medflow-readiness", daemon=True
                )
                self._thread.start()
                _running.add(self)
        return self

    def stop(self) -> None:
        """End the thread (tests: an app's monitor must not outlive its test, as each one
        broadcasts on a Celery connection pool that every app of the process shares)."""
        with self._lock:
            self._stopped.set()
            _running.discard(self)

    def refresh(self) -> Snapshot:
        with self.app.app_context():
            database, redis_check = _database(), _redis()
            workers, per_queue = _workers(redis_check["ok"])
            models = _models(per_queue)
        self.snapshot = Snapshot(
            time.monotonic(), database, redis_check, workers, models, dict(per_queue)
        )
        return self.snapshot

    def _run(self, stopped: threading.Event) -> None:
        while not stopped.is_set():
            try:
                self.refresh()
            except Exception:  # keep refreshing: a stale snapshot already reads as not ready
                log.exception("readiness refresh failed")
            stopped.wait(REFRESH_S)


_running: set[ReadinessMonitor] = set()


def stop_monitors() -> None:
    """Stop every monitor this process started."""
    for found in list(_running):
        found.stop()


def monitor(app: Flask) -> ReadinessMonitor:
    """This process's monitor of ``app``, started on first use (a forked child gets its own)."""
    found: ReadinessMonitor | None = app.extensions.get(EXTENSION)
    if found is None or found.pid != os.getpid():
        found = ReadinessMonitor(app)
        app.extensions[EXTENSION] = found
    return found.start()


def _database() -> dict[str, Any]:
    from sqlalchemy import text

    from api.extensions import services

    try:
        with services().sessions() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready"; the type is enough to act on
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


def _redis() -> dict[str, Any]:
    from api.extensions import services

    try:
        services().redis.ping()
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


def _workers(broker_up: bool) -> tuple[dict[str, Any], Counter[str]]:
    """Live workers per queue, from one broadcast (each worker replies with its queues)."""
    from api.extensions import services

    if not broker_up:
        return {"ok": False, "error": "broker_unavailable"}, Counter()
    try:
        inspect = services().celery.control.inspect(timeout=INSPECT_TIMEOUT_S)
        replies = inspect.active_queues() or {}
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}, Counter()
    per_queue = Counter(q["name"] for queues in replies.values() for q in queues)
    return {"ok": True, "nodes": len(replies)}, per_queue


def _models(per_queue: Counter[str]) -> dict[str, dict[str, Any]]:
    """Every configured or active registered model: its queue and how many workers consume it."""
    from workers.queues import infer_queue

    models: dict[str, dict[str, Any]] = {}
    for name in sorted(_model_names()):
        workers = per_queue.get(infer_queue(name), 0)
        models[name] = {"queue": infer_queue(name), "workers": workers, "served": workers > 0}
    return models


def _model_names() -> set[str]:
    from sqlalchemy import select

    from api.extensions import services
    from db.models import ModelVersion

    names = set(services().settings.models)
    try:
        with services().sessions() as session:
            query = select(ModelVersion.name).where(ModelVersion.active.is_(True))
            names.update(session.scalars(query))
    except Exception:  # the database check reports the failure; the settings' models remain
        pass
    return names
