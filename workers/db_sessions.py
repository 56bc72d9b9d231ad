"""The collector's database sessions, created on first use in its pool process (after the fork).

Only the collector's tasks (collect, reconcile, the outbox dispatcher) import this; inference
workers hold no database connection and never import ``db`` (import-linter checks it).
"""

from __future__ import annotations

from functools import cache

from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from db.session import make_engine, make_session_factory


@cache
def session_factory(settings: Settings) -> sessionmaker[Session]:
    return make_session_factory(make_engine(settings))
