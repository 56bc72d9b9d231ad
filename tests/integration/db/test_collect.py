"""db.collect on SQLite and Postgres: idempotent results, job transitions, stale work."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from db.collect import mark_enqueued, output_digest, record_results, stale_pending
from db.jobs import cancel_job, get_job
from db.models import AuditEvent, Image, ImageStatus, Job, JobStatus, utcnow
from db.session import session_scope
from pipeline.result import FAILED, OK, ImageResult

Factory = sessionmaker[Session]
MakeJob = Callable[..., tuple[Job, list[Image]]]


def ok(score: float = 0.25) -> ImageResult:
    return ImageResult("ignored", OK, sha256="cd" * 32, scores={"nodule": score, "mass": 0.5})


def failed(code: str = "CORRUPT_IMAGE") -> ImageResult:
    return ImageResult("ignored", FAILED, error_code=code, error_message="bad bytes")


def load(session_factory: Factory, job_id: str) -> Job:
    with session_scope(session_factory) as session:
        job = get_job(session, job_id)
    assert job is not None
    return job


def count_events(session_factory: Factory, action: str) -> int:
    with session_scope(session_factory) as session:
        query = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
        return int(session.scalar(query) or 0)


def test_results_are_written_once(session_factory: Factory, make_job: MakeJob) -> None:
    job, images = make_job(3)
    batch = [(images[0].id, ok()), (images[1].id, failed()), (images[0].id, ok(0.9))]
    with session_scope(session_factory) as session:
        assert record_results(session, job.id, batch) == 2  # the in-batch duplicate is dropped
    with session_scope(session_factory) as session:
        assert record_results(session, job.id, batch) == 0  # a redelivery changes nothing
    stored = load(session_factory, job.id)
    assert (stored.status, stored.succeeded, stored.failed, stored.pending) == (
        JobStatus.RUNNING,
        1,
        1,
        1,
    )
    with session_scope(session_factory) as session:
        first = session.get(Image, images[0].id)
        assert first is not None
        assert first.scores == {"nodule": 0.25, "mass": 0.5}  # the first delivery wins
        assert first.completed_at is not None
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "image.result").order_by(AuditEvent.seq)
        ).first()
        assert event is not None
        assert event.payload["output_digest"] == output_digest(first.scores)
        assert event.payload["input_sha256"] == "cd" * 32
        assert set(event.payload) == {
            "image_id",
            "job_id",
            "input_sha256",
            "model_sha256",
            "status",
            "error_code",
            "output_digest",
        }
    assert count_events(session_factory, "image.result") == 2


def test_concurrent_collectors_count_each_image_once(
    session_factory: Factory, make_job: MakeJob
) -> None:
    job, images = make_job(12)
    # Four collectors receive overlapping deliveries of the same results, at the same moment.
    batches = [[(i.id, ok()) for i in images[start : start + 8]] for start in (0, 4, 0, 4)]
    barrier = threading.Barrier(len(batches))
    written: list[int] = []
    errors: list[BaseException] = []

    def collect(batch: list[tuple[int, ImageResult]]) -> None:
        try:
            barrier.wait()
            with session_scope(session_factory) as session:
                written.append(record_results(session, job.id, batch))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=collect, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sum(written) == 12
    stored = load(session_factory, job.id)
    assert (stored.succeeded, stored.failed, stored.pending) == (12, 0, 0)
    assert stored.status == JobStatus.COMPLETED
    assert count_events(session_factory, "image.result") == 12
    assert count_events(session_factory, "job.finished") == 1


@pytest.mark.parametrize(
    ("outcomes", "final"),
    [
        (["ok", "ok"], JobStatus.COMPLETED),
        (["ok", "failed"], JobStatus.COMPLETED_WITH_ERRORS),
        (["failed", "failed"], JobStatus.FAILED),
    ],
)
def test_final_status(
    session_factory: Factory, make_job: MakeJob, outcomes: list[str], final: JobStatus
) -> None:
    job, images = make_job(2)
    results = [
        (img.id, ok() if o == "ok" else failed()) for img, o in zip(images, outcomes, strict=True)
    ]
    with session_scope(session_factory) as session:
        record_results(session, job.id, results[:1])
    running = load(session_factory, job.id)
    assert running.status == JobStatus.RUNNING and running.started_at is not None
    assert running.finished_at is None
    with session_scope(session_factory) as session:
        record_results(session, job.id, results[1:])
    done = load(session_factory, job.id)
    assert done.status == final
    assert done.started_at == running.started_at  # set by the first result only
    assert done.finished_at is not None and done.finished_at >= done.started_at
    with session_scope(session_factory) as session:
        finished = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "job.finished")
        ).one()
    assert finished.payload["status"] == final.value


def test_non_finite_score_fails_only_its_image(session_factory: Factory, make_job: MakeJob) -> None:
    job, images = make_job(2)
    with session_scope(session_factory) as session:
        record_results(session, job.id, [(images[0].id, ok(float("nan"))), (images[1].id, ok())])
    with session_scope(session_factory) as session:
        bad = session.get(Image, images[0].id)
        assert bad is not None
        assert (bad.status, bad.error_code, bad.scores) == (
            ImageStatus.FAILED,
            "INFERENCE_FAILED",
            None,
        )
    assert load(session_factory, job.id).status == JobStatus.COMPLETED_WITH_ERRORS


def test_results_for_open_or_unknown_jobs_are_ignored(
    session_factory: Factory, make_job: MakeJob
) -> None:
    job, images = make_job(1, seal=False)
    with session_scope(session_factory) as session:
        assert record_results(session, job.id, [(images[0].id, ok())]) == 0
        assert record_results(session, "f" * 32, [(images[0].id, ok())]) == 0
    assert load(session_factory, job.id).status == JobStatus.OPEN


def test_stale_pending_and_mark_enqueued(session_factory: Factory, make_job: MakeJob) -> None:
    live, live_images = make_job(3)
    cancelled, _ = make_job(1)
    make_job(1, seal=False)
    long_ago = utcnow() - timedelta(minutes=10)
    with session_scope(session_factory) as session:
        session.execute(update(Image).values(enqueued_at=long_ago))
        record_results(session, live.id, [(live_images[0].id, ok())])
        cancel_job(session, cancelled, "key:1")
    with session_scope(session_factory) as session:
        stale = stale_pending(session, older_than_s=300, limit=10)
        assert sorted(i.id for i in stale) == sorted(i.id for i in live_images[1:])
        assert all(i.job.model_name == "nodule-detector" for i in stale)  # job is loaded
        assert stale_pending(session, older_than_s=3600, limit=10) == []
        assert len(stale_pending(session, older_than_s=300, limit=1)) == 1
        assert mark_enqueued(session, [i.id for i in stale] + [live_images[0].id]) == 2
    with session_scope(session_factory) as session:
        assert stale_pending(session, older_than_s=300, limit=10) == []
        attempts = session.scalars(
            select(Image.attempts).where(Image.job_id == live.id).order_by(Image.position)
        ).all()
    assert attempts == [1, 2, 2]


def test_result_rows_keep_what_the_worker_sent(session_factory: Factory, make_job: MakeJob) -> None:
    job, images = make_job(1)
    result: Any = ok()
    result.positive, result.format, result.width, result.height = ["mass"], "png", 640, 480
    result.timings_ms, result.facts = {"decode": 1.5}, {"modality": "CR"}
    with session_scope(session_factory) as session:
        record_results(session, job.id, [(images[0].id, result)])
    with session_scope(session_factory) as session:
        row = session.get(Image, images[0].id)
        assert row is not None
        assert (row.positive, row.format, row.width, row.height) == (["mass"], "png", 640, 480)
        assert (row.timings_ms, row.facts, row.error_code) == (
            {"decode": 1.5},
            {"modality": "CR"},
            None,
        )
