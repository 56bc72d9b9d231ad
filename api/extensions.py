"""The per-app services (database, blobs, Celery, Redis, rate limiter) and response headers.

Everything is built in :func:`init_app` from the settings, one set per app, and stored in
``app.extensions["medflow"]``; nothing here connects at import time (and engines, Redis clients
and the Celery app connect lazily, on first use). Everything here is shared by the threads of a
gunicorn gthread worker: the engine's pool and the Redis client's pool are thread-safe, and what
belongs to one request lives on ``flask.g``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
from flask import Flask, Response, current_app, g, request
from sqlalchemy.orm import Session, sessionmaker

from api.ratelimit import RateLimiter
from config.settings import Settings

if TYPE_CHECKING:
    from celery import Celery

    from intake.service import Intake
    from storage.blobstore import BlobStore

EXTENSION = "medflow"
REQUEST_SESSION = "medflow_read_session"  # the flask.g attribute of request_session()

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
    readers: sessionmaker[Session]  # read-only, same pool: see request_session()
    blobs: BlobStore
    celery: Celery
    redis: redis.Redis
    limiter: RateLimiter
    intake: Intake  # stores blobs, writes job rows, sends after commit (views call only this)


def services() -> Services:
    found: Services = current_app.extensions[EXTENSION]
    return found


def request_session() -> Session:
    """This request's read-only session, opened on first use and closed when the request ends.

    Authentication reads the key in it and a read-only view (a status poll) reads in it too: one
    connection checkout per request instead of one per lookup. Never write through it (it is
    never committed); a view that writes opens its own ``session_scope``.
    """
    session: Session | None = g.get(REQUEST_SESSION)
    if session is None:
        session = services().readers()
        setattr(g, REQUEST_SESSION, session)
    return session


def end_request_session(_exc: BaseException | None = None) -> None:
    """Give the request session's connection back to the pool (a no-op if none was opened)."""
    session: Session | None = g.pop(REQUEST_SESSION, None)
    if session is not None:
        session.close()


def init_app(
    app: Flask, settings: Settings, celery: Celery | None, rate_key: Callable[[], str]
) -> Services:
    # Imported here: these modules are heavy (boto3, Celery) and an app factory should not make
    # importing `api.app` cost them.
    from db.session import make_engine, make_read_session_factory, make_session_factory
    from intake.service import Intake
    from storage.blobstore import open_blob_store

    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    # Parts per multipart request: 413 REQUEST_TOO_LARGE past it (api.upload).
    app.config["MAX_FORM_PARTS"] = settings.max_form_parts
    if celery is None:
        from workers.app import make_celery

        celery = make_celery(settings)
    engine = make_engine(settings)
    # The limiter's client gives up sooner: it fails open, and every request waits for it.
    limits = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    blobs = open_blob_store(settings)
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
    found = Services(
        settings=settings,
        sessions=make_session_factory(engine),
        readers=make_read_session_factory(engine),
        blobs=blobs,
        celery=celery,
        redis=client,
        limiter=RateLimiter(limits, settings.rate_limit, rate_key),
        intake=Intake(settings, blobs, celery, client),
    )
    app.extensions[EXTENSION] = found
    found.limiter.init_app(app)
    app.after_request(_security_headers)
    app.teardown_appcontext(end_request_session)
    return found


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/v1/"):
        # Results and job lists are patient-related: no browser or proxy may keep a copy.
        response.headers["Cache-Control"] = "no-store"
    return response
