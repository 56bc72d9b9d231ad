"""Which models still have chunks queued, read from a real Redis the way kombu stores queues."""

from __future__ import annotations

from dataclasses import replace

import redis
from kombu import Connection

from config.settings import Settings
from workers.tasks.reconcile import queued_models


def test_queued_models_are_the_non_empty_inference_queues(
    private_redis_url: str, worker_settings: Settings
) -> None:
    settings = replace(worker_settings, redis_url=private_redis_url)
    client = redis.Redis.from_url(private_redis_url)
    client.flushdb()
    with Connection(private_redis_url) as conn:
        for name in ("infer.nodule-detector", "infer.densenet", "results"):
            queue = conn.SimpleQueue(name)
            queue.put({"chunk": 1})
            queue.close()
        emptied = conn.SimpleQueue("infer.densenet")
        emptied.get(timeout=5).ack()  # drained: kombu leaves no list behind
        emptied.close()
    client.set("infer.not-a-queue", "x")
    try:
        assert queued_models(settings) == {"nodule-detector"}
    finally:
        client.flushdb()
