"""Worker process hooks; imported by worker processes only (listed in the app's ``include``).

Handlers read the Settings from the current app: in a pool process that is the worker's app.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from celery.signals import after_setup_task_logger, worker_process_init

from workers import model_cache
from workers.app import settings_of

log = logging.getLogger(__name__)


@after_setup_task_logger.connect
def configure_worker_logging(loglevel: int | str | None = None, **_: Any) -> None:
    """Add the PHI filter to Celery's handlers, once they all exist (this signal comes last)."""
    from privacy.phi import configure_logging

    configure_logging(settings_of(current_app), loglevel or logging.INFO)


@worker_process_init.connect
def load_worker_model(**_: Any) -> None:
    """Create this pool process's ONNX session now, after the fork (never in the parent)."""
    settings = settings_of(current_app)
    try:
        ref = model_cache.preload(settings)
    except Exception:
        # The worker still starts: each chunk retries the load and, if it fails again, fails as a
        # task (visible in Flower) while its images stay pending for the reconciler; a missing
        # model is the deployment's fault, never the images'.
        log.exception("could not preload the worker model")
        return
    if ref is None:  # the collector, or a worker started by hand without a model
        log.debug("no %s set: models load on first use", model_cache.WORKER_MODEL_ENV)
