"""Worker process hooks; imported by worker processes only (listed in the app's ``include``).

Handlers read the Settings from the current app: in a pool process that is the worker's app.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from celery.signals import (
    after_setup_task_logger,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
)

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


@worker_init.connect
def start_worker(**_: Any) -> None:
    """In the worker's parent: refuse a missing results key; serve the pool's metrics."""
    from config.settings import SettingsError
    from workers.metrics import serve_metrics

    settings = settings_of(current_app)
    try:
        settings.check_results_key()  # a worker or collector without it cannot do its job
    except SettingsError as exc:
        raise SystemExit(f"medflow: {exc}") from None  # one line; Celery logs any Exception
    serve_metrics(settings.metrics_port, settings.metrics_address)


_log_tokens: dict[str, Any] = {}  # task id -> the log context token to reset after the task


@task_prerun.connect
def bind_task_log_context(task_id: str, task: Any, args: Any = (), **_: Any) -> None:
    """Every line a task logs carries its task id, its name and its job id."""
    from privacy.log_format import bind

    _log_tokens[task_id] = bind(task_id=task_id, task=task.name, job_id=_job_id(args))


@task_postrun.connect
def unbind_task_log_context(task_id: str, **_: Any) -> None:
    from privacy.log_format import reset

    token = _log_tokens.pop(task_id, None)
    if token is not None:
        reset(token)


def _job_id(args: Any) -> str | None:
    # infer_chunk(job_id, ...) and collect({"job_id": ...}): ids only, never image contents.
    first = args[0] if args else None
    if isinstance(first, str):
        return first
    if isinstance(first, dict) and isinstance(first.get("job_id"), str):
        return str(first["job_id"])
    return None
