"""The per-app services (database, blobs, Celery, Redis, rate limiter) and response headers.

Everything is built in :func:`init_app` from the settings, one set per app, and stored in
``app.extensions["medflow"]``; nothing here connects at import time (and engines, Redis clients
and the Celery app connect lazily, on first use).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask, Response, current_app, request
from flask_limiter import Limiter
from sqlalchemy.orm import Session, sessionmaker

from db.settings import Settings

EXTENSION = "medflow"

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # The API serves JSON and CSV only: nothing may be loaded, framed or submitted from it.
    "Content-Security-Policy": (
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
}


@dataclass
class Services:
    settings: Settings
    sessions: sessionmaker[Session]
    blobs: Any  # db.blobstore.BlobStore
    celery: Any  # celery.Celery
    redis: redis.Redis
    limiter: Limiter


def services() -> Services:
    found: Services = current_app.extensions[EXTENSION]
    return found


def init_app(
    app: Flask, settings: Settings, celery: Any | None, rate_key: Callable[[], str]
) -> Services:
    # Imported here: these modules are heavy (boto3, Celery) and an app factory should not make
    # importing `api.app` cost them.
    from db.blobstore import open_blob_store
    from db.session import make_engine, make_session_factory

    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    # A job may carry hundreds of files; Werkzeug's default of 1,000 parts would cap it early.
    app.config["MAX_FORM_PARTS"] = 20_000
    if celery is None:
        from workers.app import make_celery

        celery = make_celery(settings)
    found = Services(
        settings=settings,
        sessions=make_session_factory(make_engine(settings)),
        blobs=open_blob_store(settings),
        celery=celery,
        redis=redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2),
        limiter=_limiter(app, settings, rate_key),
    )
    app.extensions[EXTENSION] = found
    app.after_request(_security_headers)
    return found


def _limiter(app: Flask, settings: Settings, rate_key: Callable[[], str]) -> Limiter:
    limiter = Limiter(
        rate_key,
        # One budget per key across the whole API (not one per route).
        application_limits=[settings.rate_limit],
        application_limits_exempt_when=lambda: not request.path.startswith("/v1/"),
        storage_uri=settings.redis_url,
        storage_options={"socket_connect_timeout": 2, "socket_timeout": 2},
        key_prefix="medflow-rl",
        headers_enabled=True,
        # Fail open: a Redis outage must not turn every read into a 500.
        swallow_errors=True,
    )
    limiter.init_app(app)
    return limiter


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/v1/"):
        # Results and job lists are patient-related: no browser or proxy may keep a copy.
        response.headers["Cache-Control"] = "no-store"
    return response
