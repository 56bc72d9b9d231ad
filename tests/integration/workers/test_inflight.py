"""What the reconciler counts as in flight, read from a real Redis as kombu and Celery store it:
queued chunks, queued results, deliveries not acked yet; and a delivery whose worker died is put
back in its queue (the same message, not a copy)."""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from kombu import Connection

from messages.chunk_results import ChunkResults
from messages.scored_image import ScoredImage
from workers.inflight import UNACKED, UNACKED_INDEX, read_in_flight
from workers.queues import RESULTS_QUEUE

QUEUE = "infer.nodule-detector"


def test_queued_unacked_and_dead_deliveries(private_redis_url: str, celery_app: Any) -> None:
    client = redis.Redis.from_url(private_redis_url)
    client.flushdb()
    celery_app.send_task(
        "medflow.infer_chunk", args=["j", "m:1", [[1, "a"], [2, "b"]]], queue=QUEUE
    )
    celery_app.send_task("medflow.infer_chunk", args=["j", "m:1", [[3, "c"]]], queue=QUEUE)
    results = ChunkResults("j", "t", (ScoredImage.failure(4, "X", "x"),)).to_message()
    celery_app.send_task("medflow.collect", args=[results], queue=RESULTS_QUEUE)
    celery_app.send_task("medflow.reconcile", queue=RESULTS_QUEUE)
    with Connection(private_redis_url) as conn:
        taken = conn.SimpleQueue(QUEUE).get(timeout=5)  # delivered, never acked
        taken_ids = {item[0] for item in taken.payload[0][2]}
        try:
            assert client.hlen(UNACKED) == 1 and client.llen(QUEUE) == 1
            flight = read_in_flight(client, time.time(), max_run_s=60)
            assert flight.image_ids == {1, 2, 3, 4} and flight.restored == 0

            # Much later, the delivery is still unacked: its worker died whole.
            flight = read_in_flight(client, time.time() + 61, max_run_s=60)
            assert flight.image_ids == {1, 2, 3, 4} and flight.restored == 1
            assert client.hlen(UNACKED) == 0 and client.zcard(UNACKED_INDEX) == 0
            queued = [json.loads(raw) for raw in client.lrange(QUEUE, 0, -1)]
            assert len(queued) == 2
            assert taken.headers["id"] in {m["headers"]["id"] for m in queued}
        finally:
            client.flushdb()
            client.close()
    assert taken_ids in ({1, 2}, {3})


def test_a_retry_held_until_its_eta_is_not_dead(private_redis_url: str, celery_app: Any) -> None:
    """The collector holds a retried collect (Postgres down) unacked until its countdown ends:
    its age counts from then, or a live retry would be put back as a second copy."""
    client = redis.Redis.from_url(private_redis_url)
    client.flushdb()
    results = ChunkResults("j", "t", (ScoredImage.failure(5, "X", "x"),)).to_message()
    celery_app.send_task("medflow.collect", args=[results], queue=RESULTS_QUEUE, countdown=300)
    with Connection(private_redis_url) as conn:
        conn.SimpleQueue(RESULTS_QUEUE).get(timeout=5)  # delivered, held for its ETA
        try:
            later = time.time() + 61
            flight = read_in_flight(client, later, max_run_s=60)
            assert flight.image_ids == {5} and flight.restored == 0
            assert client.hlen(UNACKED) == 1

            # Long past its ETA and still unacked: its worker died.
            flight = read_in_flight(client, later + 300, max_run_s=60)
            assert flight.image_ids == {5} and flight.restored == 1
            assert client.hlen(UNACKED) == 0 and client.llen(RESULTS_QUEUE) == 1
        finally:
            client.flushdb()
            client.close()
