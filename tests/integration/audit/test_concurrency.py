"""Many writers at once (threads and processes) still leave one contiguous, valid chain."""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from db.audit import verify_chain
from db.models import AuditEvent
from db.session import make_engine, make_session_factory, session_scope
from tests.integration.audit.helpers import POSTGRES_ONLY, append_many

THREADS, PER_THREAD = 8, 50
PROCESSES, PER_PROCESS = 3, 30


def _process_appends(database_url: str, tag: str, count: int, barrier: Any) -> None:
    # Runs in a spawned process: its own engine, nothing inherited from the test process.
    engine = make_engine(Settings(env="test", database_url=database_url))
    try:
        barrier.wait(timeout=60)
        append_many(make_session_factory(engine), count, tag=tag)
    finally:
        engine.dispose()


def _run_threads(factory: sessionmaker[Session], threads: int, per_thread: int) -> float:
    """Seconds for `threads` threads to append `per_thread` events each, started together."""
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(tag: str) -> None:
        try:
            start.wait(timeout=60)
            append_many(factory, per_thread, tag=tag)
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(threads)]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors, errors
    return time.perf_counter() - began


def _assert_contiguous(factory: sessionmaker[Session], expected: int) -> None:
    with session_scope(factory) as session:
        report = verify_chain(session)
        count, low, high = session.execute(
            select(func.count(), func.min(AuditEvent.seq), func.max(AuditEvent.seq))
        ).one()
    assert report.ok, report
    assert (report.events, count, low, high) == (expected, expected, 1, expected)


@POSTGRES_ONLY
@pytest.mark.slow
def test_threads_and_processes_append_at_once(
    session_factory: sessionmaker[Session], migrated_settings: Settings
) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES + 1)
    procs = [
        ctx.Process(
            target=_process_appends,
            args=(migrated_settings.database_url, f"p{i}", PER_PROCESS, barrier),
        )
        for i in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    barrier.wait(timeout=120)  # the processes are ready: start the threads alongside them
    _run_threads(session_factory, THREADS, PER_THREAD)
    for proc in procs:
        proc.join(timeout=300)
    assert [proc.exitcode for proc in procs] == [0] * PROCESSES
    _assert_contiguous(session_factory, THREADS * PER_THREAD + PROCESSES * PER_PROCESS)


def test_threads_append_at_once(session_factory: sessionmaker[Session]) -> None:
    # On SQLite the BEGIN IMMEDIATE write lock is what serialises the appends.
    _run_threads(session_factory, 4, 25)
    _assert_contiguous(session_factory, 100)


@POSTGRES_ONLY
@pytest.mark.slow
def test_append_rate(
    session_factory: sessionmaker[Session], record_property: Any, capsys: Any
) -> None:
    """Figures, not a gate: one transaction per append, single thread vs 8 threads."""
    single = 200 / _run_threads(session_factory, 1, 200)
    eight = (THREADS * PER_THREAD) / _run_threads(session_factory, THREADS, PER_THREAD)
    record_property("appends_per_s_1_thread", round(single))
    record_property("appends_per_s_8_threads", round(eight))
    with capsys.disabled():
        print(f"\naudit append rate: {single:.0f}/s single thread, {eight:.0f}/s 8 threads")
    _assert_contiguous(session_factory, 200 + THREADS * PER_THREAD)
