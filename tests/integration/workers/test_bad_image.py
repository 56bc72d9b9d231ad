"""A bad image fails alone: one that kills its pool process every time (WORKER_CRASHED) or hangs
(TIMED_OUT) is retried by itself once its chunk keeps dying or times out; its mates complete.

The bad images come from the test-only fault hooks (MEDFLOW_FAULT_HOOKS=1, refused outside
MEDFLOW_ENV=test): a valid PNG with a marker appended kills or hangs the process reading it.
"""

from __future__ import annotations

import io
import secrets
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import redis
from PIL import Image

from config.settings import Settings
from tests.blobs import put_bytes
from tests.integration.workers.helpers import WorkerProcess, decode_message
from workers.chunk_ledger import mark_final
from workers.enqueue import enqueue_images
from workers.fault_hooks import HANG_MARK, KILL_MARK, STUCK_MARK
from workers.queues import RESULTS_QUEUE

pytestmark = pytest.mark.slow

START_LIMIT = 2
CHUNK_LIMIT_S = 10  # soft limit 5 s (chunk_time_limits keeps 5 s for the task to wind up)
IMAGE_LIMIT_S = 6  # soft limit 5 s: a loaded machine restarts a pool process slowly
POOL_DEATH = "exited with 'signal 9 (SIGKILL)'"


@pytest.fixture(scope="module")
def faulty_settings(worker_settings: Settings) -> Settings:
    return replace(
        worker_settings,
        fault_hooks=1,
        chunk_start_limit=START_LIMIT,
        chunk_time_limit_s=CHUNK_LIMIT_S,
        image_time_limit_s=IMAGE_LIMIT_S,
    )


@pytest.fixture(scope="module")
def worker(
    faulty_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    process = WorkerProcess(faulty_settings, tmp_path_factory.mktemp("logs") / "worker.log")
    try:
        yield process.start()
    finally:
        process.stop()


def png(seed: int, mark: bytes = b"") -> bytes:
    pixels = (np.random.default_rng(seed).random((96, 96)) * 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue() + mark


def results_of(broker: redis.Redis, job_id: str) -> list[dict[str, Any]]:
    """Every image result sent for ``job_id`` so far (the results queue is not consumed)."""
    found = []
    for raw in broker.lrange(RESULTS_QUEUE, 0, -1):
        message = decode_message(raw)["args"][0]
        if message["job_id"] == job_id:
            found += message["images"]
    return found


def wait_for_results(
    broker: redis.Redis, job_id: str, count: int, worker: WorkerProcess, timeout_s: float
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while len(found := results_of(broker, job_id)) < count:
        assert time.monotonic() < deadline, f"{len(found)} results:\n{worker.text()[-4000:]}"
        time.sleep(0.2)
    return found


def submit(celery_app: Any, store: Any, images: list[bytes]) -> tuple[str, dict[int, bytes]]:
    job = secrets.token_hex(16)
    ids = {100 + n: data for n, data in enumerate(images)}
    items = [(image_id, put_bytes(store, data).key) for image_id, data in ids.items()]
    enqueue_images(celery_app, job, "tiny:1", items, chunk_size=16)
    return job, ids


def test_image_that_kills_its_process_fails_alone(
    worker: WorkerProcess, celery_app: Any, store: Any, broker: redis.Redis
) -> None:
    deaths_before = worker.text().count(POOL_DEATH)
    job, ids = submit(celery_app, store, [png(1), png(2), png(3, KILL_MARK), png(4)])

    results = wait_for_results(broker, job, len(ids), worker, timeout_s=120)

    by_id = {r["image_id"]: r for r in results}
    assert sorted(r["image_id"] for r in results) == sorted(ids)  # one result per image
    assert by_id[102]["status"] == "failed" and by_id[102]["error_code"] == "WORKER_CRASHED"
    assert all(by_id[i]["status"] == "ok" for i in (100, 101, 103))
    # The chunk died START_LIMIT times, then the bad image alone START_LIMIT times: no more.
    time.sleep(2)
    assert worker.text().count(POOL_DEATH) - deaths_before == 2 * START_LIMIT
    assert "chunk split: 4 images retried one at a time" in worker.text()
    # Logged like any failed image: its id and its code (what an operator greps for).
    assert "image 102 failed: WORKER_CRASHED" in worker.text()


def test_image_that_hangs_fails_alone(
    worker: WorkerProcess, celery_app: Any, store: Any, broker: redis.Redis
) -> None:
    started = time.monotonic()
    job, ids = submit(celery_app, store, [png(5), png(6, HANG_MARK), png(7)])

    results = wait_for_results(broker, job, len(ids), worker, timeout_s=60)

    by_id = {r["image_id"]: r for r in results}
    assert sorted(r["image_id"] for r in results) == sorted(ids)
    assert by_id[101]["status"] == "failed" and by_id[101]["error_code"] == "TIMED_OUT"
    assert by_id[100]["status"] == "ok" and by_id[102]["status"] == "ok"
    assert "image 101 failed: TIMED_OUT" in worker.text()
    # One chunk soft limit, then one image soft limit (plus the worker's own overhead).
    assert time.monotonic() - started < CHUNK_LIMIT_S + IMAGE_LIMIT_S + 20


def test_chunk_whose_images_are_all_final_is_skipped(
    worker: WorkerProcess, celery_app: Any, store: Any, broker: redis.Redis
) -> None:
    job = secrets.token_hex(16)
    mark_final(broker, job, [1, 2])
    key = put_bytes(store, png(8)).key
    enqueue_images(celery_app, job, "tiny:1", [(1, key), (2, key)], chunk_size=16)
    enqueue_images(celery_app, job, "tiny:1", [(2, key), (3, key)], chunk_size=16)

    results = wait_for_results(broker, job, 1, worker, timeout_s=60)

    # The first chunk was skipped whole; the second did only its image not yet written.
    assert [r["image_id"] for r in results] == [3]
    assert "chunk of 2 images skipped: all written already" in worker.text()


def test_image_stuck_past_the_soft_limit_fails_alone_at_the_hard_limit(
    worker: WorkerProcess, celery_app: Any, store: Any, broker: redis.Redis
) -> None:
    job, ids = submit(celery_app, store, [png(9), png(10, STUCK_MARK)])

    results = wait_for_results(broker, job, len(ids), worker, timeout_s=90)

    by_id = {r["image_id"]: r for r in results}
    assert sorted(r["image_id"] for r in results) == sorted(ids)
    assert by_id[100]["status"] == "ok"
    assert by_id[101]["status"] == "failed" and by_id[101]["error_code"] == "TIMED_OUT"
    assert "killed at its hard time limit" in worker.text()
    assert "image 101 failed: TIMED_OUT" in worker.text()
