"""What every fault must leave behind, read from the database: nothing pending, one result event
per image, counters equal to the images' states, one ``job.finished`` (and one outbox row when
the outbox exists), an audit chain that verifies, and (where the stack has a webhook receiver)
one ``job.finished`` event received, signed, acknowledged once."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text

from api.children import Child
from tests.e2e.harness import E2EStack
from tests.webhook_receiver import WebhookReceiver


def assert_sound(stack: E2EStack, job_id: str) -> dict[str, Any]:
    """The job's rows checked as a whole; returns {image position: (status, error_code)}."""
    from db.audit import verify_chain
    from db.models import Job

    rows = stack.image_rows(job_id)
    states = Counter(row.status.value for row in rows)
    assert states["pending"] == 0, f"images still pending: {states}\n{stack.diagnose(job_id)}"
    events = [e for e in stack.audit_rows() if job_id in (e.object_id, e.payload.get("job_id"))]
    results = Counter(e.object_id for e in events if e.action == "image.result")
    assert results == Counter(str(row.id) for row in rows if row.status.value != "cancelled")
    assert [e.action for e in events].count("job.finished") == 1
    with stack.sessions() as session:
        job = session.get_one(Job, job_id)
        assert (job.succeeded, job.failed, job.cancelled) == (
            states["succeeded"],
            states["failed"],
            states["cancelled"],
        )
        assert job.total == len(rows) and job.status.is_final
        assert_outbox_once(session, job_id)
        report = verify_chain(session)
    assert report.ok, report
    if stack.webhooks is not None:
        assert_webhook_once(stack.webhooks, job_id)
    return {row.position: (row.status.value, row.error_code) for row in rows}


def wait_for_webhook(receiver: WebhookReceiver, job_id: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not receiver.accepted_per_event(job_id) and time.monotonic() < deadline:
        time.sleep(0.2)


def assert_webhook_once(receiver: WebhookReceiver, job_id: str) -> Counter[str]:
    """One job.finished event id for the job, every request signed, and (as no fault here
    kills the dispatcher mid-send) that event acknowledged exactly once."""
    wait_for_webhook(receiver, job_id)
    received = receiver.for_job(job_id)
    accepted = receiver.accepted_per_event(job_id)
    assert len({r.event_id for r in received}) == 1, received
    assert all(r.signature_ok for r in received) and len(accepted) == 1, received
    assert list(accepted.values()) == [1], f"acknowledged more than once: {accepted}"
    return accepted


def assert_outbox_once(session: Any, job_id: str) -> None:
    """One job.finished fact in the outbox (its subscribers' copies aside), once it exists."""
    if not inspect(session.connection()).has_table("outbox_events"):
        return
    query = text(
        "SELECT count(*) FROM outbox_events WHERE kind = 'job.finished' AND subscriber IS NULL"
        " AND payload::text LIKE :job"
    )
    assert session.execute(query, {"job": f"%{job_id}%"}).scalar_one() == 1


# Processes ------------------------------------------------------------------------------------


def child(stack: E2EStack, name: str) -> Child:
    return next(c for c in stack.stack.children if c.name == name)


def kill(stack: E2EStack, name: str, *, group: bool = True) -> None:
    """SIGKILL a service: its whole process group, or (group=False) its main process only,
    leaving its own children (a pool, an embedded beat) orphaned as a crash would."""
    target = child(stack, name)
    if group:
        target.signal_group(signal.SIGKILL)
    else:
        os.kill(target.pid, signal.SIGKILL)
    assert target.proc is not None
    target.proc.wait(10)


def restart(stack: E2EStack, name: str) -> Child:
    old = child(stack, name)
    new = Child(old.name, old.argv, old.env, old.log).start()
    stack.stack.children[stack.stack.children.index(old)] = new
    return new


def pool_pids(stack: E2EStack, name: str) -> list[int]:
    main = child(stack, name).pid
    path = Path(f"/proc/{main}/task/{main}/children")
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []


def log_text(stack: E2EStack, name: str) -> str:
    return (stack.workdir / "logs" / f"{name}.log").read_text(errors="replace")


def wait_done(stack: E2EStack, job_id: str, timeout_s: float) -> float:
    """Seconds until the job is final (polled from the database: the API may be down)."""
    from db.models import Job

    started = time.monotonic()

    def final() -> bool:
        with stack.sessions() as session:
            return session.get_one(Job, job_id).status.is_final

    # Supervised, as in production: a worker that a fault crashes is started again, and the
    # job must still end with nothing lost or duplicated (assert_sound).
    what = f"job {job_id} to finish"
    stack.wait_until(final, timeout_s, what, job_id, poll_s=0.5, supervise=True)
    return time.monotonic() - started
