"""Flower's routes without its write actions; every configured queue known."""

from __future__ import annotations

import pytest

from workers.flower_setup import is_write_route, medflow_queues


@pytest.mark.parametrize(
    ("pattern", "write"),
    [
        ("/api/task/revoke/(.+)", True),
        ("/api/task/async-apply/(.+)", True),
        ("/api/worker/shutdown/(.+)", True),
        ("/api/worker/pool/grow/(.+)", True),
        ("/api/tasks", False),
        ("/api/task/info/(.*)", False),
        ("/broker$", False),
    ],
)
def test_write_routes(pattern: str, write: bool) -> None:
    assert is_write_route(pattern) is write


def test_every_model_queue_and_the_results_queue() -> None:
    queues = medflow_queues({"MEDFLOW_MODELS": "a,b"})
    assert queues == ["infer.a", "infer.b", "results"]
