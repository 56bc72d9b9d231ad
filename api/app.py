"""The Flask app factory: ``create_app(settings)`` wires everything; importing connects nothing."""

from __future__ import annotations

from typing import Any

import redis
from flask import Flask, Response
from sqlalchemy.exc import OperationalError

from api import auth, extensions, input_guard, request_id
from api.blueprints import audit, health, infer, job_read, job_submit, metrics, models
from api.body_timeout import BodyTimeout
from api.errors import ApiError, handle_api_error, register_error_handlers
from api.lane import queue_full
from api.openapi import bp as openapi_bp
from api.upload import UploadRequest
from config.settings import Settings
from db.idempotency import IdempotencyKeyReused
from db.jobs import JobStateError
from db.model_queue import QueueFull
from db.model_registry import ModelNotFound

BLUEPRINTS = (job_submit, job_read, infer, models, audit, health, metrics)


def create_app(settings: Settings, celery: Any | None = None) -> Flask:
    """An app serving ``settings``; ``celery`` defaults to one built from the same settings."""
    app = Flask("medflow", static_folder=None)  # an API: no static files
    app.request_class = UploadRequest
    input_guard.init_app(app)  # first: nothing else reads the request before it
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep the serialisers' order
    request_id.init_app(app)  # first: a request refused early still gets and returns its id
    extensions.init_app(app, settings, celery, rate_key=auth.rate_limit_key)
    metrics.init_app(app)
    for module in BLUEPRINTS:
        app.register_blueprint(module.bp)
    app.register_blueprint(openapi_bp)
    register_error_handlers(app)
    app.register_error_handler(JobStateError, _job_state_error)
    app.register_error_handler(ModelNotFound, _model_not_found)
    app.register_error_handler(IdempotencyKeyReused, _key_reused)
    app.register_error_handler(QueueFull, lambda exc: handle_api_error(queue_full(exc)))
    for unavailable in (OperationalError, redis.ConnectionError, redis.TimeoutError):
        app.register_error_handler(unavailable, _unavailable)
    # A body that stops arriving under gunicorn is a 408, not a thread held for ever.
    app.wsgi_app = BodyTimeout(app.wsgi_app, settings.body_read_timeout_s)  # type: ignore[method-assign]
    return app


def _job_state_error(exc: JobStateError) -> Response:
    # The job exists and the caller may act on it, but not in its current state.
    return handle_api_error(ApiError(exc.code, exc.message, 409))


def _model_not_found(exc: ModelNotFound) -> Response:
    return handle_api_error(ApiError(exc.code, "no such model or version", 404, {"model": exc.ref}))


def _key_reused(exc: IdempotencyKeyReused) -> Response:
    # The same key with another request: answering with the old job would hide the new one.
    message = "this Idempotency-Key was used for a different request (model or images)"
    return handle_api_error(
        ApiError("IDEMPOTENCY_KEY_REUSED", message, 422, {"job_id": exc.job_id})
    )


def _unavailable(exc: Exception) -> Response:
    # A server the request needs is down: a retry later may succeed, unlike after a 500.
    error = ApiError(
        "SERVICE_UNAVAILABLE",
        "a backing service is unavailable; retry later",
        503,
        {"service": "redis" if isinstance(exc, redis.RedisError) else "database"},
        headers={"Retry-After": "5"},
    )
    return handle_api_error(error)
