"""Fixtures of the workers' unit tests: an in-memory Celery app and what it publishes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from celery.signals import before_task_publish

from config.settings import Settings
from workers.app import make_celery


@pytest.fixture
def published() -> Iterator[list[dict[str, Any]]]:
    """Every message the app publishes: routing key, headers and the serialized body."""
    seen: list[dict[str, Any]] = []

    def record(body: Any, routing_key: str, headers: dict[str, Any], **_: Any) -> None:
        seen.append({"routing_key": routing_key, "headers": headers, "body": body})

    before_task_publish.connect(record, weak=False)
    yield seen
    before_task_publish.disconnect(record)


@pytest.fixture
def celery() -> Any:
    app = make_celery(replace(Settings(env="test"), redis_url="memory://"))
    app.conf.update(broker_url="memory://", result_backend="cache+memory://")
    yield app
    app.close()
