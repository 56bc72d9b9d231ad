"""``medflow.infer_chunk``: fetch a chunk's blobs, run the model, send the results onward.

A broken image is a result with an error code, never a task failure. An image that kills or
hangs its process is another matter: the chunk's starts are counted in Redis, and a chunk that
keeps dying or times out is split into single-image tasks, so that image fails alone
(WORKER_CRASHED, TIMED_OUT) and its mates complete. Logs carry counts only: never a ref, a
blob key or an identifier from an image.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celery import Celery, Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from config.settings import Settings
from messages.chunk_results import ChunkResults
from messages.scored_image import ScoredImage
from messages.signing import sign_chunk
from pipeline.errors import ErrorCode
from pipeline.result import FAILED, ImageResult
from workers import fault_hooks, metrics, model_cache, resources
from workers.app import image_time_limits, settings_of
from workers.cancel import is_cancelled
from workers.chunk_ledger import count_start, forget_starts, not_final
from workers.enqueue import INFER_TASK, INTERACTIVE_KWARG, SENT_AT_HEADER, lane_kwargs
from workers.queues import RESULTS_QUEUE, lane_queue, model_name_of

if TYPE_CHECKING:  # onnxruntime must not load in the worker's parent process (not fork-safe)
    from pipeline.predict import Predictor

log = logging.getLogger(__name__)

COLLECT_TASK = "medflow.collect"


@dataclass(frozen=True)
class ChunkRef:
    """Where a chunk's images go when they are retried alone: the queue they came from (an
    interactive job's chunk to the model's priority queue, not behind the batch)."""

    job_id: str
    model_ref: str
    interactive: bool = False


class InferTask(Task):
    """Handles the hard time limit: Celery kills the pool process and calls this in the worker's
    main process (where a hang the soft limit could not interrupt ends up)."""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if not isinstance(exc, TimeLimitExceeded):
            return
        job_id, model_ref, items = args
        log.warning("chunk of %d images killed at its hard time limit", len(items))
        todo = [(int(i), str(k)) for i, k in items]
        chunk = ChunkRef(job_id, model_ref, bool((kwargs or {}).get(INTERACTIVE_KWARG)))
        abandon(self.app, task_id, chunk, todo, ErrorCode.TIMED_OUT, 1)


@shared_task(
    name="medflow.infer_chunk", bind=True, base=InferTask, ignore_result=True, acks_late=True
)
def infer_chunk(
    self: Task, job_id: str, model_ref: str, items: list[list[Any]], interactive: bool = False
) -> None:
    # Time limits come from Settings through the app's task_annotations (workers/app.py), or,
    # for an image retried alone, from the message (isolate below).
    settings = settings_of(self.app)
    client = resources.redis_client(settings.redis_url)
    if is_cancelled(client, job_id):
        log.info("chunk of %d images skipped: job cancelled", len(items))
        return
    todo = not_final(client, job_id, [(int(i), str(k)) for i, k in items])
    if not todo:
        log.info("chunk of %d images skipped: all written already", len(items))
        return
    starts = count_start(client, str(self.request.id))
    chunk = ChunkRef(job_id, model_ref, interactive)
    if starts > settings.chunk_start_limit:
        # Every earlier start died with its process (acks-late put the message back each time).
        log.warning("chunk of %d images started %d times: giving up on it", len(todo), starts)
        code = ErrorCode.WORKER_CRASHED
        abandon(self.app, self.request.id, chunk, todo, code, starts - 1)
        return
    _observe_wait(model_name_of(model_ref), self.request.get(SENT_AT_HEADER))
    sender = BatchSender(self, job_id, model_name_of(model_ref))
    started = time.perf_counter()
    try:
        run_chunk(settings, model_ref, todo, sender.send)
    except SoftTimeLimitExceeded:
        left = [item for item in todo if item[0] not in sender.sent]
        log.warning("chunk timed out with %d of %d images unfinished", len(left), len(todo))
        abandon(self.app, self.request.id, chunk, left, ErrorCode.TIMED_OUT, starts)
    else:
        forget_starts(client, str(self.request.id))
    elapsed_ms = (time.perf_counter() - started) * 1000
    log.info("chunk of %d images: %d failed, %.0f ms", len(todo), sender.failed, elapsed_ms)


class BatchSender:
    """Sends each model batch's results to the collector as soon as they exist, so the images
    done before one that hangs or kills the process are not lost with it."""

    def __init__(self, task: Task, job_id: str, model: str) -> None:
        self.app, self.chunk_id, self.job_id = task.app, str(task.request.id), job_id
        self.model = model
        self.sent: set[int] = set()
        self.failed = 0

    def send(self, results: list[ScoredImage]) -> None:
        send_results(self.app, self.chunk_id, self.job_id, results)
        self.sent.update(result.image_id for result in results)
        self.failed += observe(self.model, results)


def observe(model: str, results: list[ScoredImage]) -> int:
    """Count results in the metrics and log each failure; how many failed."""
    metrics.observe_images(model, results)
    failed = [result for result in results if result.status == FAILED]
    for result in failed:
        # The id and the code only: an error message may quote the image's header.
        extra = {"image_id": result.image_id, "error_code": str(result.error_code)}
        log.warning("image %d failed: %s", result.image_id, result.error_code, extra=extra)
    return len(failed)


def send_results(app: Celery, chunk_id: str, job_id: str, results: list[ScoredImage]) -> None:
    chunk = ChunkResults(job_id=job_id, chunk_id=chunk_id, images=tuple(results))
    chunk = sign_chunk(chunk, settings_of(app).results_key)  # the collector refuses it unsigned
    # Flower shows a task's argsrepr to every operator; scores are clinical data, so it gets
    # a count instead (the message body still carries the results).
    summary = f"({job_id!r}, <{len(results)} results>)"
    app.send_task(COLLECT_TASK, args=[chunk.to_message()], queue=RESULTS_QUEUE, argsrepr=summary)


def abandon(
    app: Celery,
    chunk_id: str,
    chunk: ChunkRef,
    items: list[tuple[int, str]],
    code: ErrorCode,
    n: int,
) -> None:
    """A chunk that cannot finish. Alone, its image fails with ``code``; with mates, every
    image is retried by itself, so the one at fault fails alone and the others complete."""
    model = model_name_of(chunk.model_ref)
    if len(items) > 1:
        metrics.CHUNKS_SPLIT.labels(model, str(code)).inc()
        isolate(app, chunk, items)
        return
    message = _ABANDONED[code].format(n=n, limit=image_time_limits(settings_of(app))[1])
    failure = ScoredImage.failure(items[0][0], code, message)
    send_results(app, chunk_id, chunk.job_id, [failure])
    observe(model, [failure])  # counted and logged like any failed image


_ABANDONED = {
    ErrorCode.WORKER_CRASHED: "the worker process died {n} times on this image, retried alone",
    ErrorCode.TIMED_OUT: "no result within the time limit ({limit} s alone)",
}


def isolate(app: Celery, chunk: ChunkRef, items: list[tuple[int, str]]) -> None:
    """One single-image task per image, on the short per-image time limits, in the chunk's own
    lane. This task then returns and is acked: the new messages replace it, they do not add
    to it."""
    soft, hard = image_time_limits(settings_of(app))
    queue = lane_queue(model_name_of(chunk.model_ref), chunk.interactive)
    with app.producer_or_acquire() as producer:
        for image_id, blob_key in items:
            app.send_task(
                INFER_TASK,
                args=[chunk.job_id, chunk.model_ref, [[image_id, blob_key]]],
                kwargs=lane_kwargs(chunk.interactive),
                queue=queue,
                producer=producer,
                soft_time_limit=soft,
                time_limit=hard,
            )
    log.warning("chunk split: %d images retried one at a time", len(items))


def _observe_wait(model: str, sent_at: Any) -> None:
    # Wall clocks of two hosts: a skew shows up here (a negative wait is dropped, not counted).
    try:
        waited = time.time() - float(sent_at)
    except (TypeError, ValueError):
        return  # sent without the header (by hand, or by an older API)
    if waited >= 0:
        metrics.QUEUE_WAIT.labels(model).observe(waited)


def run_chunk(
    settings: Settings,
    model_ref: str,
    items: list[tuple[int, str]],
    report: Callable[[list[ScoredImage]], None] | None = None,
) -> list[ScoredImage]:
    """Results in input order; a blob that cannot be fetched fails its image alone.

    Blobs are fetched one model batch at a time, just before they are predicted: a chunk of
    16 full-size DICOMs fetched up front would hold 250 MB per process, and the heap keeps
    the high-water mark of the largest chunk it has seen. Each batch's results go to
    ``report`` as soon as they exist.
    """
    predictor = model_cache.process_cache(settings).get(model_ref)
    results: dict[int, ScoredImage] = {}
    step = max(1, int(predictor.card.batch_size))
    for start in range(0, len(items), step):
        batch = items[start : start + step]
        done = run_batch(settings, predictor, batch)
        results.update(done)
        if report is not None:
            report([done[image_id] for image_id, _ in batch])
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
            if settings.fault_hooks:
                fault_hooks.trip(outcome[0])
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
