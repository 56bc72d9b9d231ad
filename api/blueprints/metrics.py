"""GET /metrics: Prometheus text format; with ``MEDFLOW_METRICS_TOKEN`` set, only for a bearer
of that token (the metrics are internals).

Labels are bounded: route templates (``/v1/jobs/<job_id>``, never a job id), statuses, model
and queue names. Nothing about an image or a patient appears here. Under gunicorn the request
counters run in Prometheus multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set before the
workers start): each process writes its own file and a scrape sums them all, so a counter
never goes backwards whichever process answers. Job, image and queue gauges come from
Postgres and Redis at scrape time; serving gauges from the readiness thread's snapshot.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select, type_coerce

from api.errors import ApiError
from api.extensions import services
from api.readiness import monitor
from db.models import AuditEvent, Image, ImageStatus, Job, UTCDateTime
from workers.queues import RESULTS_QUEUE, infer_queue, priority_queue
from workers.refusals import REFUSED_COUNTER

bp = Blueprint("metrics", __name__)

REGISTRY_KEY = "medflow.metrics"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class _Metrics:
    """One registry per app, so several apps in one process (tests) do not collide."""

    def __init__(self, app: Flask) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "medflow_http_requests",
            "HTTP requests by route and status",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "medflow_http_request_seconds",
            "HTTP request duration by route",
            ["endpoint"],
            registry=self.registry,
        )
        self.state = _StateCollector(app)
        self.registry.register(self.state)

    def scrape_registry(self) -> CollectorRegistry:
        """Under gunicorn (multiprocess mode) the sum over every worker process's files, so a
        counter never goes backwards from one scrape to the next whichever process answers."""
        directory = os.environ.get(MULTIPROC_ENV)
        if not directory:
            return self.registry
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
        registry.register(self.state)
        return registry


def init_app(app: Flask) -> None:
    app.extensions[REGISTRY_KEY] = _Metrics(app)
    app.before_request(_start_timer)
    app.after_request(_count)


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


def _count(response: Response) -> Response:
    metrics: _Metrics = _app_metrics()
    endpoint = request.url_rule.rule if request.url_rule else "unmatched"
    metrics.requests.labels(endpoint, request.method, str(response.status_code)).inc()
    if "metrics_started" in g:
        metrics.latency.labels(endpoint).observe(time.perf_counter() - g.metrics_started)
    return response


def _app_metrics() -> _Metrics:
    found: _Metrics = current_app.extensions[REGISTRY_KEY]
    return found


@bp.get("/metrics")
def metrics() -> Response:
    token = services().settings.metrics_token
    if token and not _bearer_matches(token):
        # Queue names, models and failure rates are internals: only the scraper may read them.
        raise ApiError("UNAUTHENTICATED", "the metrics token is required", 401)
    body = generate_latest(_app_metrics().scrape_registry())
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


def _bearer_matches(token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())


class _StateCollector:
    """Jobs and images by status (from Postgres) and queue depths (from Redis), read at scrape."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        up = GaugeMetricFamily(
            "medflow_metrics_source_up", "Whether a source answered the scrape", labels=["source"]
        )
        with self.app.app_context():
            for source, read in (("database", _job_gauges), ("redis", _queue_gauges)):
                try:
                    families = list(read())
                except Exception:  # a down source must not hide the other metrics
                    families = []
                up.add_metric([source], 1 if families else 0)
                yield from families
        yield up
        yield from _serving_gauges(self.app)

    def describe(self) -> list[Any]:
        return []  # no scrape at registration time: it would query the database


def _job_gauges() -> Iterator[GaugeMetricFamily]:
    jobs = GaugeMetricFamily("medflow_jobs", "Jobs by status", labels=["status"])
    images = GaugeMetricFamily("medflow_images", "Images by status", labels=["status"])
    # Image counts come from the job counters: O(jobs), not a scan of the images table.
    query = select(
        Job.status,
        func.count(),
        func.sum(Job.total),
        func.sum(Job.succeeded),
        func.sum(Job.failed),
        func.sum(Job.cancelled),
    ).group_by(Job.status)
    totals = {"pending": 0, "succeeded": 0, "failed": 0, "cancelled": 0}
    with services().sessions() as session:
        for status, count, total, ok, failed, cancelled in session.execute(query):
            jobs.add_metric([str(status)], count)
            done = (ok or 0) + (failed or 0) + (cancelled or 0)
            totals["pending"] += (total or 0) - done
            totals["succeeded"] += ok or 0
            totals["failed"] += failed or 0
            totals["cancelled"] += cancelled or 0
    for name, value in totals.items():
        images.add_metric([name], value)
    yield from (jobs, images)
    yield from _pending_gauges()
    yield from _audit_gauges()


def _audit_gauges() -> Iterator[GaugeMetricFamily]:
    """The last recorded verify (its outcome, when) and the last anchor written, from the chain's
    own events: what the alerts "audit verify failing" and "anchors stale" watch."""
    ok = GaugeMetricFamily("medflow_audit_last_verify_ok", "1 if the last audit verify passed")
    verified = GaugeMetricFamily(
        "medflow_audit_last_verify_timestamp_seconds", "When the audit chain was last verified"
    )
    anchored = GaugeMetricFamily(
        "medflow_audit_last_anchor_timestamp_seconds", "When the chain head was last anchored"
    )
    with services().sessions() as session:
        last_verify = _last_event(session, "audit.verified")
        last_anchor = _last_event(session, "audit.anchored")
    if last_verify is not None:
        ok.add_metric([], 1 if last_verify.payload.get("ok") else 0)
        verified.add_metric([], last_verify.occurred_at.timestamp())
    if last_anchor is not None:
        anchored.add_metric([], last_anchor.occurred_at.timestamp())
    yield from (ok, verified, anchored)


def _last_event(session: Any, action: str) -> AuditEvent | None:
    # Newest first along the primary key: verify and anchor events are frequent, so the walk
    # back is short.
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq.desc())
    return session.scalars(query.limit(1)).first()


def _pending_gauges() -> Iterator[GaugeMetricFamily]:
    """Images waiting for a result per model, and how long the oldest has waited since it was
    sent (uses the index on images (status, enqueued_at))."""
    depth = GaugeMetricFamily(
        "medflow_pending_images", "Images waiting for a result, per model", labels=["model"]
    )
    oldest = GaugeMetricFamily(
        "medflow_oldest_pending_seconds",
        "Seconds since the oldest image still waiting for a result was sent, per model",
        labels=["model"],
    )
    first_sent = type_coerce(func.min(Image.enqueued_at), UTCDateTime())
    query = (
        select(Job.model_name, func.count(Image.id), first_sent)
        .join(Job, Image.job_id == Job.id)
        .where(Image.status == ImageStatus.PENDING)
        .group_by(Job.model_name)
    )
    now = datetime.now(UTC)
    with services().sessions() as session:
        for model, count, sent in session.execute(query):
            depth.add_metric([model], count)
            oldest.add_metric([model], (now - sent).total_seconds() if sent else 0.0)
    yield from (depth, oldest)


def _serving_gauges(app: Flask) -> Iterator[GaugeMetricFamily]:
    """Live workers per model, from the readiness thread's last snapshot (no query here)."""
    snapshot = monitor(app).snapshot
    workers = GaugeMetricFamily(
        "medflow_model_workers", "Live workers consuming each model's queue", labels=["model"]
    )
    served = GaugeMetricFamily(
        "medflow_model_served", "1 when at least one worker serves the model", labels=["model"]
    )
    for name, status in (snapshot.models if snapshot else {}).items():
        workers.add_metric([name], status["workers"])
        served.add_metric([name], 1 if status["served"] else 0)
    yield from (workers, served)


def _queue_gauges() -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    gauge = GaugeMetricFamily("medflow_queue_depth", "Messages waiting per queue", labels=["queue"])
    models = services().settings.models
    queues = [q for name in models for q in (priority_queue(name), infer_queue(name))]
    queues.append(RESULTS_QUEUE)
    client = services().redis
    for queue in queues:
        gauge.add_metric([queue], client.llen(queue))
    yield gauge
    refused = CounterMetricFamily(
        "medflow_collect_refused",
        "Collect messages the collector refused (bad or missing MAC, malformed); none written",
    )
    refused.add_metric([], int(client.get(REFUSED_COUNTER) or 0))
    yield refused
