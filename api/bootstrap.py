"""Bring a database up to date before the API starts: migrations, then the model registry.

`medflow up` calls :func:`prepare`; containers run ``python -m api.bootstrap`` before gunicorn
(safe to run from several replicas at once: the upgrade and the registry upsert are idempotent).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from config.settings import Settings

T = TypeVar("T")


def prepare(settings: Settings) -> None:
    from db.model_registry import sync_models
    from db.session import upgrade
    from pipeline.repository import ModelRepository
    from storage.model_store import open_model_store

    if settings.is_sqlite:  # SQLite creates the file but not its directory
        Path(settings.database_url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    upgrade(settings)
    store = open_model_store(settings)
    store.refresh()  # an S3 repository's cards into the local mirror
    in_session(settings, lambda s: sync_models(s, ModelRepository(store.local_root)))


def in_session(settings: Settings, work: Callable[[Any], T]) -> T:
    """Run ``work(session)`` in one transaction on a short-lived engine."""
    from db.session import make_engine, make_session_factory, session_scope

    engine = make_engine(settings)
    try:
        with session_scope(make_session_factory(engine)) as session:
            return work(session)
    finally:
        engine.dispose()


if __name__ == "__main__":
    prepare(Settings.from_env())
    print("database migrated; model registry synced")
