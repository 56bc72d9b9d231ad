"""Exactly one collector: a Postgres advisory lock held for the life of the collector process.

The Kubernetes manifests run one collector with the Recreate strategy, but a second one can
still appear (a stuck pod beside its replacement, an operator's `docker compose up --scale`).
Its writes would be safe (each append takes the chain's own lock, and results are written
once), but it would also run a second reconciler beat. So the collector's parent process takes
a session-level advisory lock at start-up, on a connection of its own, and waits (consuming
nothing) until it gets it; the lock goes when that process, or its connection, dies.

The connection stays referenced by this module for the life of the process: pool processes
forked later inherit the object but never use or close it (they leave through os._exit), so
the lock's session is never ended by a child.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import current_app
from celery.signals import worker_init

from config.settings import Settings
from workers.app import settings_of

log = logging.getLogger(__name__)

# The two-key form of the lock: ASCII "mfco" as the first key, and a hash of the database and
# schema as the second, so one collector per MedFlow deployment (two deployments, or two test
# stacks, in one database's schemas do not exclude each other).
COLLECTOR_LOCK_CLASS = int.from_bytes(b"mfco", "big", signed=True)
LOCK_SQL = (
    "SELECT pg_try_advisory_lock(:cls, hashtext(current_database() || '.' || current_schema()))"
)
_held: list[Any] = []  # the connection holding the lock; never closed while the process lives


def acquire_collector_lock(
    settings: Settings, timeout_s: float | None = None, poll_s: float = 2.0
) -> Any | None:
    """The connection holding the lock, once this process has it; None after ``timeout_s``
    (never, when None) or on SQLite (one machine, one collector: nothing to arbitrate)."""
    if settings.is_sqlite:
        return None
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(settings.database_url, poolclass=NullPool)
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    query = text(LOCK_SQL)
    while not conn.scalar(query, {"cls": COLLECTOR_LOCK_CLASS}):
        if deadline is not None and time.monotonic() >= deadline:
            conn.close()
            return None
        log.warning("another collector holds the collector lock; waiting")
        time.sleep(poll_s)
    log.info("collector lock taken")
    _held.append(conn)
    return conn


@worker_init.connect
def wait_for_collector_lock(**_: Any) -> None:
    """The collector's parent takes the lock before it consumes (this module is loaded by the
    collector's app only: workers.app.COLLECTOR_MODULES)."""
    acquire_collector_lock(settings_of(current_app))
