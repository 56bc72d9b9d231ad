"""A chunk survives the death of the worker running it (acks_late + reject_on_worker_lost).

To kill a worker *mid-chunk* deterministically, the chunk's blob is first a named pipe: the task
blocks reading it, and opening the pipe for writing succeeds only once the task is reading.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import secrets
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from PIL import Image

from config.settings import Settings
from tests.blobs import put_bytes
from tests.integration.workers.helpers import WorkerProcess, collect_messages
from workers.enqueue import enqueue_images

pytestmark = pytest.mark.slow

PNG_SIDE = 96


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for process in started:
        process.stop()


def image_bytes() -> bytes:
    out = io.BytesIO()
    Image.linear_gradient("L").resize((PNG_SIDE, PNG_SIDE)).save(out, "PNG")
    return out.getvalue()


def blocking_blob(store: Any, data: bytes) -> tuple[str, Path]:
    """A blob key whose file is, for now, a FIFO with no writer (reads block)."""
    key = hashlib.sha256(data).hexdigest()
    path = store.path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    os.mkfifo(path)
    return key, path


def wait_for_reader(path: Path, timeout_s: float = 60.0) -> int:
    """Open the FIFO for writing as soon as the task has it open for reading (it is mid-chunk)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def unblock(store: Any, path: Path, data: bytes) -> None:
    """Put the real bytes in place; the blocked reader keeps the old FIFO (its own inode)."""
    path.unlink()
    put_bytes(store, data)


def test_killed_pool_process_requeues_its_chunk(
    worker_settings: Settings,
    celery_app: Any,
    store: Any,
    broker: redis.Redis,
    workers: list[WorkerProcess],
    logs: Path,
) -> None:
    worker = WorkerProcess(worker_settings, logs / "worker.log").start()
    workers.append(worker)
    data = image_bytes()
    key, path = blocking_blob(store, data)
    job = secrets.token_hex(16)
    enqueue_images(celery_app, job, "tiny:1", [(1, key)], chunk_size=16)
    writer = wait_for_reader(path)
    unblock(store, path, data)
    _, pool_pid, _ = worker.loaded()

    os.kill(pool_pid, signal.SIGKILL)  # the main process sees WorkerLostError and rejects
    os.close(writer)

    (message,) = collect_messages(broker, job, timeout_s=60)
    assert message["args"][0]["images"][0]["status"] == "ok"
    assert "WorkerLostError" in worker.text()


def test_chunk_of_a_killed_worker_is_redelivered_after_the_visibility_timeout(
    worker_settings: Settings,
    celery_app: Any,
    store: Any,
    broker: redis.Redis,
    workers: list[WorkerProcess],
    logs: Path,
) -> None:
    first = WorkerProcess(worker_settings, logs / "first.log").start()
    workers.append(first)
    data = image_bytes()[:-1] + b"\x82"  # another key than the test above (IEND CRC byte)
    key, path = blocking_blob(store, data)
    job = secrets.token_hex(16)
    enqueue_images(celery_app, job, "tiny:1", [(1, key)], chunk_size=16)
    writer = wait_for_reader(path)
    unblock(store, path, data)

    first.kill()  # the whole worker at once: nobody is left to reject or restore the message
    os.close(writer)
    assert broker.hlen("unacked") == 1 and broker.llen("infer.tiny") == 0
    killed_at = time.monotonic()

    # Redis hands the message out again once the visibility timeout has passed.
    short = replace(worker_settings, visibility_timeout_s=4, chunk_time_limit_s=3)
    second = WorkerProcess(short, logs / "second.log").start()
    workers.append(second)
    (message,) = collect_messages(broker, job, timeout_s=60)

    assert message["args"][0]["images"][0]["image_id"] == 1
    assert time.monotonic() - killed_at < 60
