"""Load as an operator's worst day brings it: 10 jobs of 200 images uploaded at once while 50
clients poll their status. Nothing is lost or duplicated, and no poll is answered with an error."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from tests.e2e.harness import E2EStack
from tests.faults.checks import assert_sound, wait_done
from tests.faults.conftest import JOB_SIZE, ImageMaker

JOBS = 10
POLLERS = 50
POLL_PAUSE_S = 0.2  # a client polling five times a second: 250 polls/s from all of them
DONE_WITHIN_S = 600


def test_ten_jobs_uploaded_at_once_with_fifty_pollers(stack: E2EStack, images: ImageMaker) -> None:
    batches = [images.job(JOB_SIZE) for _ in range(JOBS)]
    job_ids: list[str] = []
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    stop = threading.Event()
    lock = threading.Lock()

    def poll(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            with lock:
                known = list(job_ids)
            if known:
                started = time.monotonic()
                status, _ = stack.http("GET", f"/v1/jobs/{rng.choice(known)}")
                with lock:
                    statuses[status] += 1
                    latencies.append(time.monotonic() - started)
            stop.wait(POLL_PAUSE_S)

    def upload(paths: list) -> None:
        job_id = stack.upload_job(paths)  # 503 UPLOADS_BUSY is retried, as medflow submit does
        with lock:
            job_ids.append(job_id)

    pollers = [threading.Thread(target=poll, args=(n,), daemon=True) for n in range(POLLERS)]
    for poller in pollers:
        poller.start()
    try:
        with ThreadPoolExecutor(JOBS) as uploads:
            list(uploads.map(upload, batches))
        for job_id in job_ids:
            wait_done(stack, job_id, DONE_WITHIN_S)
    finally:
        stop.set()
        for poller in pollers:
            poller.join(timeout=30)

    assert len(job_ids) == JOBS
    for job_id in job_ids:
        states = assert_sound(stack, job_id)
        assert len(states) == JOB_SIZE
        assert set(states.values()) == {("succeeded", None)}
    assert set(statuses) == {200}, statuses  # no poll refused or failed under the load
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)]
    print(f"\n{sum(statuses.values())} polls during the jobs, p99 {p99 * 1000:.0f} ms")
