"""Per-process clients (Redis, blob store, database), created on first use in the process.

Pool processes are forked from the worker's parent; a socket or pool opened before the fork
would be shared by every child. Creating each client lazily, inside the process that uses it,
avoids that without any fork hook. (Settings is a frozen dataclass, hence a cache key.)
"""

from __future__ import annotations

from functools import cache
from typing import Any

from config.settings import Settings


@cache
def redis_client(redis_url: str) -> Any:
    import redis

    return redis.Redis.from_url(redis_url, socket_timeout=10, health_check_interval=30)


@cache
def blob_store(settings: Settings) -> Any:
    from storage.blobstore import open_blob_store

    return open_blob_store(settings)


@cache
def session_factory(settings: Settings) -> Any:
    """The collector's sessions; inference workers never call this (they hold no DB connection)."""
    from db.session import make_engine, make_session_factory

    return make_session_factory(make_engine(settings))
