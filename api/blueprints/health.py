"""Liveness and readiness probes (unauthenticated, never rate limited).

``/readyz`` reads the last snapshot of :mod:`api.readiness` (taken by a background thread every
few seconds): it answers in milliseconds whatever the database, Redis or the workers are doing.
Ready means the database and Redis answer; per-model serving status (live workers per model
queue) is in the body and in the metrics, and never makes the API unready: jobs for a model
with no worker wait in its queue.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app

from api.readiness import monitor

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    snapshot = monitor(current_app._get_current_object()).snapshot  # type: ignore[attr-defined]
    if snapshot is None:  # the first refresh of this process is still running
        return {"status": "starting", "checks": {}, "models": {}}, 503
    checks = {"database": snapshot.database, "redis": snapshot.redis, "workers": snapshot.workers}
    body = {
        "status": "ready" if snapshot.ready else "not_ready",
        "checks": checks,
        "models": snapshot.models,
        "age_s": round(time.monotonic() - snapshot.at, 3),
    }
    return body, 200 if snapshot.ready else 503
