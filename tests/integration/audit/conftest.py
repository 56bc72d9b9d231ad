"""Fixtures for the audit tests, on top of tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from config.settings import Settings
from db.session import make_engine


@pytest.fixture
def engine(migrated_settings: Settings) -> Iterator[Engine]:
    """A second engine on the test's database, for raw SQL (tampering, triggers)."""
    engine = make_engine(migrated_settings)
    try:
        yield engine
    finally:
        engine.dispose()
