"""Refusing a job that no worker would ever take: 503 ``MODEL_NOT_SERVED`` (issue 9).

A job for a registered model that no worker consumes used to wait in its queue forever. Under
KEDA a deployed model's workers scale from zero, so "no live worker right now" is normal for a
model the deployment runs (``settings.models``, ``MEDFLOW_MODELS``): its jobs are always
accepted, and its first job starts a worker. A model outside that list is accepted only while
the readiness snapshot (``api.readiness``, refreshed in the background, never on a request)
shows a live worker on its queue. When the snapshot cannot tell (none yet, stale, the broadcast
failed) the job is accepted: it waits in the queue as before, rather than being refused on a
guess.
"""

from __future__ import annotations

from flask import current_app

from api.errors import ApiError
from api.extensions import services
from api.readiness import monitor
from workers.queues import infer_queue, priority_queue

RETRY_AFTER_S = 30  # an operator must start a worker or deploy the model: not seconds away


def require_served(model_name: str) -> None:
    """Raise 503 MODEL_NOT_SERVED for a model no worker serves or will be started for."""
    if model_name in services().settings.models:
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    snapshot = monitor(app).snapshot
    if snapshot is None or not snapshot.fresh or not snapshot.workers.get("ok"):
        return
    queues = (infer_queue(model_name), priority_queue(model_name))
    if any(snapshot.queues.get(queue, 0) > 0 for queue in queues):
        return
    raise ApiError(
        "MODEL_NOT_SERVED",
        "no worker serves this model and this deployment does not run it (MEDFLOW_MODELS)",
        503,
        {"model": model_name},
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
