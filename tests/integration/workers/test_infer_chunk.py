"""medflow.infer_chunk in a real `celery worker` on the tiny model, read back from raw Redis."""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from PIL import Image

from bench.writers import encode
from config.settings import Settings
from tests.blobs import put_bytes
from tests.integration.workers.helpers import WorkerProcess, collect_messages
from workers.cancel import mark_cancelled
from workers.enqueue import enqueue_images

pytestmark = pytest.mark.slow

PATIENT_INDEX = 4242  # bench.writers names the patient SYNTH^<index>, id SYN<index>


@pytest.fixture(scope="module")
def worker(
    worker_settings: Settings, broker: redis.Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    process = WorkerProcess(worker_settings, tmp_path_factory.mktemp("logs") / "worker.log")
    try:
        yield process.start()
    finally:
        process.stop()


def png(side: int = 128) -> bytes:
    pixels = (np.random.default_rng(1).random((side, side)) * 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def dicom_with_identifiers() -> bytes:
    display = np.random.default_rng(2).random((128, 128))
    return encode(display, "dicom-m2-u12-explicit", index=PATIENT_INDEX)


def job_id() -> str:
    return secrets.token_hex(16)


def results_by_id(message: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {item["image_id"]: item for item in message["args"][0]["images"]}


def test_chunk_results_reach_the_results_queue_with_ids_only(
    worker: WorkerProcess, celery_app: Any, store: Any, broker: redis.Redis
) -> None:
    blobs = [put_bytes(store, data) for data in (dicom_with_identifiers(), png(), b"not an image")]
    job = job_id()
    items = [(10 + n, blob.key) for n, blob in enumerate(blobs)]
    enqueue_images(celery_app, job, "tiny:1", items, chunk_size=16)

    (message,) = collect_messages(broker, job)

    assert message["headers"]["task"] == "medflow.collect"
    # Flower displays argsrepr: a count, never the scores.
    assert message["headers"]["argsrepr"] == f"({job!r}, <3 results>)"
    results = results_by_id(message)
    assert sorted(results) == [10, 11, 12]
    assert results[10]["status"] == "ok" and results[11]["status"] == "ok"
    assert results[12]["status"] == "failed" and results[12]["error_code"]
    assert set(results[10]["scores"]) == {"A", "B", "C"}
    assert all("fetch" in r["timings_ms"] for r in results.values() if r["status"] == "ok")
    # The worker names images by id; it never knew a ref, and identifiers leave as pseudonyms.
    assert all("ref" not in r for r in results.values())
    assert results[10]["input_sha256"] == blobs[0].key
    assert any("pseudonym" in key for key in results[10]["facts"])
    raw = message["raw"].decode("utf-8", "replace")
    assert f"SYN{PATIENT_INDEX}" not in raw and f"SYNTH^{PATIENT_INDEX}" not in raw
    # No pixels: the whole message is a fraction of the DICOM it describes.
    assert len(message["raw"]) < len(dicom_with_identifiers()) // 4


def test_missing_blob_is_a_failed_result(
    worker: WorkerProcess, celery_app: Any, broker: redis.Redis
) -> None:
    job = job_id()
    enqueue_images(celery_app, job, "tiny:1", [(1, "0" * 64)], chunk_size=16)

    (message,) = collect_messages(broker, job)

    result = results_by_id(message)[1]
    assert (result["status"], result["error_code"]) == ("failed", "BLOB_MISSING")


def test_cancelled_job_sends_nothing(
    worker: WorkerProcess, celery_app: Any, store: Any, broker: redis.Redis
) -> None:
    key = put_bytes(store, png()).key
    cancelled, control = job_id(), job_id()
    mark_cancelled(broker, cancelled)
    enqueue_images(celery_app, cancelled, "tiny:1", [(1, key)], chunk_size=16)
    enqueue_images(celery_app, control, "tiny:1", [(2, key)], chunk_size=16)

    # One process, one chunk at a time, in order: once the control job's result is out, the
    # cancelled chunk has been handled.
    assert len(collect_messages(broker, control)) == 1
    assert collect_messages(broker, cancelled, timeout_s=0) == []
    assert "skipped: job cancelled" in worker.text()


def test_onnx_session_lives_in_the_pool_process_only(worker: WorkerProcess) -> None:
    ref, pid, parent = worker.loaded()

    assert ref == "tiny:1"
    assert pid != worker.pid and parent == worker.pid
    # onnxruntime is not fork-safe: the parent must never even load the library.
    assert "onnxruntime" in Path(f"/proc/{pid}/maps").read_text()
    assert "onnxruntime" not in Path(f"/proc/{worker.pid}/maps").read_text()


def test_worker_log_has_counts_not_identifiers(
    worker: WorkerProcess, celery_app: Any, store: Any, broker: redis.Redis
) -> None:
    # Its own chunk (a DICOM naming a patient, and a broken file): no other test's log needed.
    blobs = [put_bytes(store, data) for data in (dicom_with_identifiers(), b"broken " * 9)]
    job = job_id()
    enqueue_images(celery_app, job, "tiny:1", [(30, blobs[0].key), (31, blobs[1].key)], 16)
    assert len(collect_messages(broker, job)) == 1
    worker.wait_for(lambda text: "chunk of 2 images: 1 failed" in text, timeout_s=30)
    text = worker.text()
    assert f"SYN{PATIENT_INDEX}" not in text and f"SYNTH^{PATIENT_INDEX}" not in text
    assert not any(blob.key in text for blob in blobs)  # no blob keys either
