"""db.collect on SQLite and Postgres: idempotent results, job transitions, stale work."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from db.collect import mark_enqueued, output_digest, record_results, stale_pending
from db.jobs import cancel_job, get_job, owner_actor, seal_job
from db.models import AuditEvent, Image, ImageStatus, Job, JobStatus, utcnow
from db.session import session_scope
from pipeline.result import FAILED, OK, ImageResult
from tests.integration.scored import scored

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


def load_in(session: Session, job_id: str) -> Job:
    job = get_job(session, job_id)
    assert job is not None
    return job


def events(session_factory: Factory, job_id: str) -> list[AuditEvent]:
    with session_scope(session_factory) as session:
        query = select(AuditEvent).where(AuditEvent.object_id == job_id)
        return list(session.scalars(query.order_by(AuditEvent.seq)))


def count_events(session_factory: Factory, action: str) -> int:
    with session_scope(session_factory) as session:
        query = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
        return int(session.scalar(query) or 0)


def test_results_are_written_once(session_factory: Factory, make_job: MakeJob) -> None:
    job, images = make_job(3)
    batch = [(images[0].id, ok()), (images[1].id, failed()), (images[0].id, ok(0.9))]
    with session_scope(session_factory) as session:
        assert (
            record_results(session, job.id, scored(batch)) == 2
        )  # the in-batch duplicate is dropped
    with session_scope(session_factory) as session:
        assert record_results(session, job.id, scored(batch)) == 0  # a redelivery changes nothing
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


def test_a_chunk_costs_the_same_statements_whatever_its_size(
    session_factory: Factory, make_job: MakeJob
) -> None:
    # Appends are serialised, so per-image statements would bound the collector (and hold the
    # chain's lock longer); a chunk is written in a fixed number of round trips instead.
    engine = session_factory.kw["bind"]
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    counts = []
    for size in (2, 16):
        job, images = make_job(size)
        results = [(image.id, ok() if image.position % 2 else failed()) for image in images]
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            with session_scope(session_factory) as session:
                assert record_results(session, job.id, scored(results)) == size
        finally:
            event.remove(engine, "before_cursor_execute", count)
        counts.append(len(statements))
    assert counts[0] == counts[1], counts
    stored = load(session_factory, job.id)
    assert (stored.succeeded, stored.failed) == (8, 8)
    assert stored.status == JobStatus.COMPLETED_WITH_ERRORS
    assert count_events(session_factory, "image.result") == 18


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
                written.append(record_results(session, job.id, scored(batch)))
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
        record_results(session, job.id, scored(results[:1]))
    running = load(session_factory, job.id)
    assert running.status == JobStatus.RUNNING and running.started_at is not None
    assert running.finished_at is None
    with session_scope(session_factory) as session:
        record_results(session, job.id, scored(results[1:]))
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
        record_results(
            session, job.id, scored([(images[0].id, ok(float("nan"))), (images[1].id, ok())])
        )
    with session_scope(session_factory) as session:
        bad = session.get(Image, images[0].id)
        assert bad is not None
        assert (bad.status, bad.error_code, bad.scores) == (
            ImageStatus.FAILED,
            "INFERENCE_FAILED",
            None,
        )
    assert load(session_factory, job.id).status == JobStatus.COMPLETED_WITH_ERRORS


def test_an_open_job_takes_results_but_closes_only_when_sealed(
    session_factory: Factory, make_job: MakeJob
) -> None:
    job, images = make_job(2, seal=False)
    with session_scope(session_factory) as session:
        assert record_results(session, job.id, scored([(i.id, ok()) for i in images])) == 2
        assert record_results(session, "f" * 32, scored([(images[0].id, ok())])) == 0  # unknown job
    done = load(session_factory, job.id)
    # Nothing pending, but more images may still come: the job stays open.
    assert (done.status, done.succeeded, done.finished_at) == (JobStatus.OPEN, 2, None)
    assert done.started_at is not None
    with session_scope(session_factory) as session:
        assert seal_job(session, done) == []
    sealed = load(session_factory, job.id)
    assert sealed.status == JobStatus.COMPLETED and sealed.finished_at == sealed.sealed_at
    finished = [e for e in events(session_factory, job.id) if e.action == "job.finished"]
    assert [(e.actor, e.payload["status"]) for e in finished] == [(owner_actor(job), "completed")]


def test_a_job_sealed_mid_flight_runs_on_and_closes_on_its_last_result(
    session_factory: Factory, make_job: MakeJob
) -> None:
    job, images = make_job(2, seal=False)
    with session_scope(session_factory) as session:
        record_results(session, job.id, scored([(images[0].id, failed())]))
        assert load_in(session, job.id).status == JobStatus.OPEN
        seal_job(session, load_in(session, job.id))
    assert load(session_factory, job.id).status == JobStatus.RUNNING
    with session_scope(session_factory) as session:
        record_results(session, job.id, scored([(images[1].id, ok())]))
    assert load(session_factory, job.id).status == JobStatus.COMPLETED_WITH_ERRORS


def test_seal_sends_images_never_sent(session_factory: Factory, make_job: MakeJob) -> None:
    # Rows from a version that enqueued at seal: no enqueued_at until the seal sends them.
    job, images = make_job(2, seal=False)
    with session_scope(session_factory) as session:
        session.execute(
            update(Image).where(Image.id == images[1].id).values(enqueued_at=None, attempts=0)
        )
    with session_scope(session_factory) as session:
        unsent = seal_job(session, load_in(session, job.id))
        assert [(i.id, i.attempts) for i in unsent] == [(images[1].id, 1)]
        assert unsent[0].enqueued_at is not None


def test_stale_pending_and_mark_enqueued(session_factory: Factory, make_job: MakeJob) -> None:
    live, live_images = make_job(3)
    cancelled, _ = make_job(1)
    _, open_images = make_job(1, seal=False)  # open jobs are processed too: theirs count
    long_ago = utcnow() - timedelta(minutes=10)
    with session_scope(session_factory) as session:
        session.execute(update(Image).values(enqueued_at=long_ago))
        record_results(session, live.id, scored([(live_images[0].id, ok())]))
        cancel_job(session, cancelled, "key:1")
    with session_scope(session_factory) as session:
        stale = stale_pending(session, older_than_s=300, limit=10)
        expected = live_images[1:] + open_images
        assert sorted(i.id for i in stale) == sorted(i.id for i in expected)
        assert all(i.job.model_name == "nodule-detector" for i in stale)  # job is loaded
        assert stale_pending(session, older_than_s=3600, limit=10) == []
        assert len(stale_pending(session, older_than_s=300, limit=1)) == 1
        assert mark_enqueued(session, [i.id for i in stale] + [live_images[0].id]) == 3
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
        record_results(session, job.id, scored([(images[0].id, result)]))
    with session_scope(session_factory) as session:
        row = session.get(Image, images[0].id)
        assert row is not None
        assert (row.positive, row.format, row.width, row.height) == (["mass"], "png", 640, 480)
        assert (row.timings_ms, row.facts, row.error_code) == (
            {"decode": 1.5},
            {"modality": "CR"},
            None,
        )
