"""Per-process clients (Redis, blob store), created on first use in the process.

Pool processes are forked from the worker's parent; a socket or pool opened before the fork
would be shared by every child. Creating each client lazily, inside the process that uses it,
avoids that without any fork hook. (Settings is a frozen dataclass, hence a cache key.)
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from config.settings import Settings

if TYPE_CHECKING:  # imported when first used, in the process that uses them
    import redis

    from storage.blobstore import BlobStore


@cache
def redis_client(redis_url: str) -> redis.Redis:
    import redis

    return redis.Redis.from_url(redis_url, socket_timeout=10, health_check_interval=30)


@cache
def blob_store(settings: Settings) -> BlobStore:
    from storage.blobstore import open_blob_store

    return open_blob_store(settings)
