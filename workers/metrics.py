"""Metrics of the inference workers and the collector, in Prometheus multiprocess mode.

Celery's prefork pool runs tasks in child processes; with ``PROMETHEUS_MULTIPROC_DIR`` set
(before the worker starts) each child writes its samples to files there and the worker's
parent serves their sum on ``MEDFLOW_METRICS_PORT`` (``serve_metrics``), so a counter keeps
rising across pool restarts. Labels are bounded: model names, statuses, error codes, stages,
webhook endpoint names.
Nothing about an image or a patient appears here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Histogram

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
STAGES = ("fetch", "decode", "preprocess", "inference")
# Seconds: a stage of one image is milliseconds; a queue wait or a job can be minutes.
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

IMAGES = Counter(
    "medflow_worker_images",
    "Images processed by the workers, by model, status and error code",
    ["model", "status", "error_code"],
)
STAGE_SECONDS = Histogram(
    "medflow_stage_seconds",
    "Per-image time of each stage (fetch, decode, preprocess, inference)",
    ["model", "stage"],
    buckets=STAGE_BUCKETS,
)
QUEUE_WAIT = Histogram(
    "medflow_queue_wait_seconds",
    "Time a chunk waited in its model's queue before a worker started it",
    ["model"],
    buckets=WAIT_BUCKETS,
)
CHUNKS_SPLIT = Counter(
    "medflow_chunks_split",
    "Chunks that could not finish (their process died or hung) and were split into one task per"
    " image, by model and cause (WORKER_CRASHED, TIMED_OUT)",
    ["model", "cause"],
)
RESULTS_WRITTEN = Counter("medflow_results_written", "Image results the collector wrote")
AUDIT_APPENDS = Counter("medflow_audit_appends", "Audit events the collector appended")
JOB_SECONDS = Histogram(
    "medflow_job_duration_seconds",
    "From a job's creation to its last result, per model",
    ["model"],
    buckets=WAIT_BUCKETS,
)

# Webhooks (issue 10): one per endpoint attempt. Labels: configured endpoint names only.
WEBHOOK_DELIVERIES = Counter(
    "medflow_webhook_deliveries",
    "Webhook delivery attempts by endpoint and outcome (sent: a 2xx answer; failed: retried)",
    ["endpoint", "outcome"],
)
WEBHOOK_SECONDS = Histogram(
    "medflow_webhook_seconds",
    "Time of one webhook delivery attempt, per endpoint",
    ["endpoint"],
    buckets=STAGE_BUCKETS,
)


def observe_images(model: str, results: Iterable[Any]) -> None:
    """Count each result and its stage timings (``timings_ms`` of a ScoredImage)."""
    for result in results:
        code = str(result.error_code or "")
        IMAGES.labels(model, str(result.status), code).inc()
        timings = result.timings_ms or {}
        for stage in STAGES:
            if stage in timings:
                STAGE_SECONDS.labels(model, stage).observe(float(timings[stage]) / 1000)


def serve_metrics(port: int, address: str) -> bool:
    """Serve the sum over this worker's processes; only in multiprocess mode (else no-op)."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not port or not directory:
        return False
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    start_http_server(port, addr=address, registry=registry)
    log.info("metrics on %s:%d", address, port)
    return True
