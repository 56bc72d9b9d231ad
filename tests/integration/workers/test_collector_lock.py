"""Exactly one collector: the second waits for the first one's advisory lock."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from config.settings import Settings
from workers.collector_lock import _held, acquire_collector_lock


def test_a_second_collector_waits_until_the_first_is_gone(postgres_schema_url: str) -> None:
    settings = replace(Settings(env="test"), database_url=postgres_schema_url)
    first = acquire_collector_lock(settings, timeout_s=5)
    assert first is not None
    try:
        assert acquire_collector_lock(settings, timeout_s=1.0, poll_s=0.2) is None
    finally:
        _held.remove(first)
        first.close()  # the first collector's process (and its session) ends
    second = acquire_collector_lock(settings, timeout_s=5, poll_s=0.2)
    assert second is not None
    _held.remove(second)
    second.close()


def test_collectors_of_two_schemas_do_not_exclude_each_other(postgres_database: Any) -> None:
    schemas = [postgres_database.new_schema() for _ in range(2)]
    held = []
    try:
        for _, url in schemas:
            settings = replace(Settings(env="test"), database_url=url)
            held.append(acquire_collector_lock(settings, timeout_s=2.0, poll_s=0.2))
        assert all(conn is not None for conn in held)
    finally:
        for conn in filter(None, held):
            _held.remove(conn)
            conn.close()
        for schema, _ in schemas:
            postgres_database.drop_schema(schema)


@pytest.mark.parametrize("url", ["sqlite:///x.db"])
def test_sqlite_has_nothing_to_arbitrate(url: str) -> None:
    assert acquire_collector_lock(replace(Settings(env="test"), database_url=url)) is None
