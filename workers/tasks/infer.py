"""``medflow.infer_chunk``: fetch a chunk's blobs, run the model, send the results onward.

A broken image is a result with an error code, never a task failure, so nothing here retries
an image. Logs carry counts only: never a ref, a blob key or an identifier from an image.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from config.settings import Settings
from messages.chunk_results import ChunkResults
from messages.scored_image import ScoredImage
from pipeline.errors import ErrorCode
from pipeline.result import FAILED, ImageResult
from workers import model_cache, resources
from workers.app import settings_of
from workers.cancel import is_cancelled
from workers.queues import RESULTS_QUEUE

if TYPE_CHECKING:  # onnxruntime must not load in the worker's parent process (not fork-safe)
    from pipeline.predict import Predictor

log = logging.getLogger(__name__)

COLLECT_TASK = "medflow.collect"


@shared_task(name="medflow.infer_chunk", bind=True, ignore_result=True, acks_late=True)
def infer_chunk(self: Task, job_id: str, model_ref: str, items: list[list[Any]]) -> None:
    # Time limits come from Settings through the app's task_annotations (workers/app.py).
    settings = settings_of(self.app)
    if is_cancelled(resources.redis_client(settings.redis_url), job_id):
        log.info("chunk of %d images skipped: job cancelled", len(items))
        return
    started = time.perf_counter()
    results = run_chunk(settings, model_ref, [(int(i), str(k)) for i, k in items])
    chunk = ChunkResults(job_id=job_id, chunk_id=str(self.request.id), images=tuple(results))
    # Flower shows a task's argsrepr to every operator; scores are clinical data, so it gets
    # a count instead (the message body still carries the results).
    summary = f"({job_id!r}, <{len(results)} results>)"
    message = chunk.to_message()
    self.app.send_task(COLLECT_TASK, args=[message], queue=RESULTS_QUEUE, argsrepr=summary)
    failed = sum(result.status == FAILED for result in results)
    elapsed_ms = (time.perf_counter() - started) * 1000
    log.info("chunk of %d images: %d failed, %.0f ms", len(items), failed, elapsed_ms)


def run_chunk(
    settings: Settings, model_ref: str, items: list[tuple[int, str]]
) -> list[ScoredImage]:
    """Results in input order; a blob that cannot be fetched fails its image alone.

    Blobs are fetched one model batch at a time, just before they are predicted: a chunk of
    16 full-size DICOMs fetched up front would hold 250 MB per process, and the heap keeps
    the high-water mark of the largest chunk it has seen.
    """
    predictor = model_cache.process_cache(settings).get(model_ref)
    results: dict[int, ScoredImage] = {}
    step = max(1, int(predictor.card.batch_size))
    for start in range(0, len(items), step):
        results.update(run_batch(settings, predictor, items[start : start + step]))
    return [results[image_id] for image_id, _ in items]


def run_batch(
    settings: Settings, predictor: Predictor, items: list[tuple[int, str]]
) -> dict[int, ScoredImage]:
    fetched: dict[int, tuple[bytes, float]] = {}
    results: dict[int, ScoredImage] = {}
    for image_id, blob_key in items:
        outcome = fetch(settings, image_id, blob_key)
        if isinstance(outcome, ScoredImage):
            results[image_id] = outcome
        else:
            fetched[image_id] = outcome
    blob_keys = dict(items)
    for image_id, result in zip(fetched, predict(predictor, fetched), strict=True):
        result.timings_ms["fetch"] = fetched[image_id][1]
        # The blob key is the content sha256 (the store computed it while writing the bytes),
        # so the predictor does not hash 8-16 MB again per image.
        result.sha256 = blob_keys[image_id]
        results[image_id] = ScoredImage.from_result(image_id, result)
    return results


def fetch(settings: Settings, image_id: int, blob_key: str) -> tuple[bytes, float] | ScoredImage:
    from storage.blobstore import BlobMissing

    started = time.perf_counter()
    try:
        data = resources.blob_store(settings).get(blob_key)
    except SoftTimeLimitExceeded:
        raise
    except BlobMissing:
        message = "the image's bytes are not in the store"
        return ScoredImage.failure(image_id, ErrorCode.BLOB_MISSING, message)
    except Exception as exc:  # network, permissions: the store, not the image, is at fault
        log.warning("blob fetch failed: %s", type(exc).__name__)
        message = f"fetch failed: {type(exc).__name__}"
        return ScoredImage.failure(image_id, ErrorCode.FETCH_FAILED, message)
    return data, round((time.perf_counter() - started) * 1000, 3)


def predict(predictor: Predictor, fetched: dict[int, tuple[bytes, float]]) -> list[ImageResult]:
    # The ref given to the model is the image id: the worker never knows the client's name.
    batch = [(str(image_id), data) for image_id, (data, _) in fetched.items()]
    if not batch:
        return []
    try:
        return list(predictor.predict(batch))
    except SoftTimeLimitExceeded:
        raise
    except Exception:  # Predictor isolates bad images; this is the belt to its braces
        log.exception("batch prediction raised; retrying image by image")
        return [predict_one(predictor, ref, data) for ref, data in batch]


def predict_one(predictor: Predictor, ref: str, data: bytes) -> ImageResult:
    try:
        return next(iter(predictor.predict([(ref, data)])))
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:
        message = f"prediction raised {type(exc).__name__}"
        return ImageResult(ref, FAILED, error_code=ErrorCode.INTERNAL_ERROR, error_message=message)
