"""MedFlow end to end: the whole stack (api.stack.Stack), a private Postgres database and Redis db.

For each job: open it, send the files, seal it, then wait for the last result row, reading
Postgres directly every 0.1 s (a cheap query; the API is left to the pollers). Files are sent
either the way ``medflow submit`` does (``upload``: sequential multipart requests of at most
64 MiB) or, for the jobs that only add polling and RSS figures, as ``file://`` URIs the API
imports itself (one JSON request; much quicker than re-uploading 2 GB). Figures come from the rows
the collector wrote: ``completed_at`` of the first and last result, and their ``timings_ms``;
and, per job, the CPU core-seconds each part of the stack spent (bench.cpu_use).
Worker RSS is the sum over the model pool's child processes (the Celery prefork children).
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from api.children import free_port
from api.client import MedflowClient
from api.commands.submit import upload
from api.stack import Stack
from bench.cpu_use import cpu_seconds, spent
from bench.pollers import Pollers
from bench.report import load_average, rate, stage_means
from config.settings import Settings

MIB = 1024 * 1024
UPLOAD_BATCH_BYTES = 64 * MIB  # medflow submit's default --batch-mb
WAIT_POLL_S = 0.1
FINAL = ("completed", "completed_with_errors", "failed", "cancelled")


@dataclass(frozen=True)
class JobPlan:
    """How one job is sent (``"upload"`` or ``"import"``) and polled.

    ``poll_interval_s``: None for no pollers, 0 for back to back; ``poll_for_s``: stop the
    pollers after this long (None: when the job ends).
    """

    via: str = "upload"
    poll_interval_s: float | None = None
    poll_for_s: float | None = None


@contextmanager
def bench_database(admin_url: str, name: str) -> Iterator[str]:
    """A fresh database ``name`` on the server of ``admin_url``; dropped on the way out."""
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield engine.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


# The claim that tests/conftest.py's redis_url fixture sets on the database it uses (SET NX): a
# test session skips a claimed database, so it never flushes ours, and we never flush its.
REDIS_CLAIM = "medflow:test-session-claim"
CLAIM_TTL_S = 3 * 3600


@contextmanager
def claimed_redis_db(base_url: str, preferred: int) -> Iterator[str]:
    """An empty Redis database on ``base_url`` (no /db), claimed as a test session claims one.

    ``preferred`` is tried first, then 15 down to 1; the claim is dropped on the way out.
    """
    import redis

    token = f"medflow-bench-{uuid.uuid4().hex[:8]}"
    for index in [preferred, *(i for i in range(15, 0, -1) if i != preferred)]:
        url = f"{base_url.rstrip('/')}/{index}"
        client = redis.Redis.from_url(url)
        if not client.set(REDIS_CLAIM, token, nx=True, ex=CLAIM_TTL_S):
            client.close()
            continue
        try:
            client.pipeline(transaction=True).flushdb().set(
                REDIS_CLAIM, token, ex=CLAIM_TTL_S
            ).execute()
            yield url
        finally:
            if client.get(REDIS_CLAIM) == token.encode():
                client.flushdb()
            client.close()
        return
    raise RuntimeError(f"every Redis database 1..15 on {base_url} is claimed")


def measure_end_to_end(
    files: Sequence[Path],
    model: str,
    *,
    database_url: str,
    redis_url: str,
    workdir: Path,
    jobs: Sequence[JobPlan],
    pollers: int,
) -> dict[str, Any]:
    """Run ``jobs`` one after the other through one stack; figures per job and overall."""
    shutil.rmtree(workdir, ignore_errors=True)
    settings = replace(
        Settings(),
        database_url=database_url,
        redis_url=redis_url,
        blob_url=f"file://{workdir / 'blobs'}",
        import_roots=tuple({p.parent.resolve() for p in files}),
    )
    stack = Stack(
        settings, [model], api_port=free_port(), flower_port=free_port(), workdir=workdir / "stack"
    )
    with stack:
        watcher = JobWatcher(stack)
        client = MedflowClient(stack.api_url, stack.api_key)
        polling = [MedflowClient(stack.api_url, token) for token in _poller_keys(stack, pollers)]
        rss = {"start": watcher.pool_rss_mb()}
        runs = []
        for index, plan in enumerate(jobs):
            runs.append(_job(client, watcher, model, files, polling, plan))
            rss[f"after_{len(files) * (index + 1)}"] = watcher.pool_rss_mb()
        workers = watcher.concurrency()
        watcher.close()
    # The logs stay for a look afterwards; the blobs (a copy of the workload) do not.
    shutil.rmtree(workdir / "blobs", ignore_errors=True)
    return _summary(runs, rss, len(files), workers)


def _poller_keys(stack: Stack, count: int) -> list[str]:
    """One operator key per poller (operators may read every job; each key has its own budget)."""
    from api.bootstrap import in_session
    from db.keys import create_key
    from db.models import Role

    def create(session: Any) -> list[str]:
        return [create_key(session, f"bench-poller-{i}", Role.OPERATOR)[1] for i in range(count)]

    return in_session(stack.settings, create)


class JobWatcher:
    """Reads jobs from Postgres and the worker pool's memory from /proc (psutil)."""

    def __init__(self, stack: Stack) -> None:
        from db.session import make_engine, make_session_factory

        self.stack = stack
        self.engine = make_engine(stack.settings)
        self.sessions = make_session_factory(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def pool_processes(self) -> list[Any]:
        import psutil

        worker = next(c for c in self.stack.children if c.name.startswith("worker-"))
        return list(psutil.Process(worker.pid).children(recursive=True))

    def pool_rss_mb(self) -> float:
        return round(sum(p.memory_info().rss for p in self.pool_processes()) / MIB, 1)

    def concurrency(self) -> int:
        return len(self.pool_processes())

    def wait(self, job_id: str, timeout_s: float, *, until_time: float | None = None) -> None:
        """Until the job is final; or, with ``until_time``, at most that long, quietly."""
        from db.models import Job

        deadline = time.monotonic() + (until_time or timeout_s)
        while time.monotonic() < deadline:
            with self.sessions() as session:
                status = session.get_one(Job, job_id).status
            if str(status) in FINAL:
                return
            dead = self.stack.dead()
            if dead:
                raise RuntimeError(f"{dead[0].name} died; see {dead[0].log}")
            time.sleep(WAIT_POLL_S)
        if until_time is not None:
            return
        raise TimeoutError(f"job {job_id} not finished after {timeout_s:.0f} s")

    def done(self, job_id: str) -> int:
        """Images of the job with a result row written."""
        from db.models import Job

        with self.sessions() as session:
            job = session.get_one(Job, job_id)
            return int(job.succeeded + job.failed)

    def rows(self, job_id: str) -> tuple[Any, list[Any]]:
        from sqlalchemy import select

        from db.models import Image, Job

        with self.sessions() as session:
            job = session.get_one(Job, job_id)
            session.expunge(job)
            query = select(Image.status, Image.format, Image.completed_at, Image.timings_ms)
            images = list(session.execute(query.where(Image.job_id == job_id)))
        return job, images


def _job(
    client: MedflowClient,
    watcher: JobWatcher,
    model: str,
    files: Sequence[Path],
    polling: list[MedflowClient],
    plan: JobPlan,
) -> dict[str, Any]:
    load_before = load_average()
    cpu_before = cpu_seconds(watcher.stack.children)
    started = time.time()
    job_id = str(client.open_job(model, idempotency_key=uuid.uuid4().hex)["id"])
    if plan.via == "upload":
        upload(client, job_id, list(files), UPLOAD_BATCH_BYTES)
    else:
        _import(client, job_id, files)
    client.seal(job_id)
    sealed = time.time()
    done_at_seal = watcher.done(job_id)
    interval_s = plan.poll_interval_s
    timeout = 120 + 2.0 * len(files)
    poll: dict[str, Any] = {}
    if interval_s is not None and polling:
        with Pollers(polling, job_id, interval_s) as pollers:
            watcher.wait(job_id, timeout, until_time=plan.poll_for_s)
        poll = pollers.summary()
    watcher.wait(job_id, timeout)
    cpu = spent(cpu_before, cpu_seconds(watcher.stack.children))
    job, images = watcher.rows(job_id)
    figures = _job_figures(job, images, started, sealed, files, poll, load_before)
    return {"via": plan.via, "done_at_seal": done_at_seal, "cpu_core_s": cpu, **figures}


def _import(client: MedflowClient, job_id: str, files: Sequence[Path]) -> None:
    """Add ``files`` to the job as file:// URIs (the API reads them from under import_roots)."""
    images = [{"uri": path.resolve().as_uri(), "ref": path.name} for path in files]
    # The client has no call for URI batches (``medflow submit`` uploads); same request, by hand.
    client._json("POST", f"/v1/jobs/{job_id}/images", {"images": images})


def _job_figures(
    job: Any,
    images: list[Any],
    started: float,
    sealed: float,
    files: Sequence[Path],
    poll: dict[str, Any],
    load_before: list[float],
) -> dict[str, Any]:
    done = sorted(row.completed_at.timestamp() for row in images if row.completed_at)
    last = done[-1] if done else time.time()
    size = sum(p.stat().st_size for p in files)
    by_format: dict[str, list[Any]] = {}
    for row in images:
        by_format.setdefault(str(row.format), []).append(row.timings_ms or {})
    return {
        "job_id": job.id,
        "status": str(job.status),
        "images": len(images),
        "succeeded": job.succeeded,
        "failed": job.failed,
        "pollers": poll.get("pollers", 0),
        "upload_s": round(sealed - started, 3),
        "upload_mb_per_s": round(size / MIB / max(sealed - started, 1e-9), 1),
        "time_to_first_result_s": round(done[0] - started, 3) if done else None,
        "first_result_after_seal_s": round(done[0] - sealed, 3) if done else None,
        "total_s": round(last - started, 3),
        "processing_s": round(last - sealed, 3),
        "images_per_s": rate(len(images), last - started),
        "processing_images_per_s": rate(len(images), last - sealed),
        "server_throughput_per_s": _server_rate(job),
        "stage_ms": stage_means(row.timings_ms or {} for row in images),
        "stage_ms_by_format": {k: stage_means(v) for k, v in sorted(by_format.items())},
        "poll": poll or None,
        "load_before": load_before,
        "load_after": load_average(),
    }


def _server_rate(job: Any) -> float | None:
    if job.started_at is None or job.finished_at is None:
        return None
    return rate(job.succeeded + job.failed, (job.finished_at - job.started_at).total_seconds())


def _summary(
    runs: list[dict[str, Any]], rss: dict[str, float], per_job: int, workers: int
) -> dict[str, Any]:
    """Headline figures from the first uploaded job without pollers (the user's path)."""
    headline = next((r for r in runs if r["via"] == "upload" and not r["pollers"]), runs[0])
    quiet = [run for run in runs if not run["pollers"]]

    polls = {_poll_name(run["poll"]): run["poll"] for run in runs if run["poll"]}
    return {
        "worker_processes": workers,
        "images_per_job": per_job,
        "jobs": runs,
        "images_per_s": headline["images_per_s"],
        "processing_images_per_s": headline["processing_images_per_s"],
        # Processing does not depend on how the bytes arrived: every job without pollers.
        "processing_images_per_s_quiet_jobs": [r["processing_images_per_s"] for r in quiet],
        "upload_s": headline["upload_s"],
        "upload_mb_per_s": headline["upload_mb_per_s"],
        "time_to_first_result_s": headline["time_to_first_result_s"],
        "done_at_seal": headline["done_at_seal"],
        "cpu_core_s": headline["cpu_core_s"],
        "stage_ms": headline["stage_ms"],
        "poll": polls,
        "rss_mb": _rss_figures(rss, per_job),
    }


def _poll_name(poll: dict[str, Any]) -> str:
    return "back_to_back" if not poll["interval_s"] else f"every_{poll['interval_s']:g}s"


def _rss_figures(rss: dict[str, float], per_job: int) -> dict[str, Any]:
    """RSS at start, after the first job and after the last; growth between those two."""
    after = sorted((int(k.split("_")[1]), v) for k, v in rss.items() if k.startswith("after_"))
    figures: dict[str, Any] = {"start": rss.get("start"), "samples": rss}
    if after:
        figures |= {"images_first": after[0][0], "after_first_job": after[0][1]}
        figures |= {"images_last": after[-1][0], "after_last_job": after[-1][1]}
    if len(after) > 1 and after[0][1]:
        figures["growth_pct"] = round(100 * (after[-1][1] - after[0][1]) / after[0][1], 1)
    return figures
