"""The fault suite's stack: `medflow up`'s processes on a private Redis and a private Postgres,
with the test-only fault hooks on and short timers, shared by every test of the session.

Timers: chunks of 8 cut at 12 s (an image alone at 8 s: a loaded machine is slow), a chunk split
after 2 starts, the reconciler every 2 s re-sending images that no message has held for 6 s and
sweeping upload spools idle for 15 s. Jobs are the issue's 200 images, small PNGs (96 px: the
faults are about chunks, processes and servers, not pixels), so a job takes seconds.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from config.settings import Settings
from tests.e2e.harness import E2EStack
from tests.faults.servers import PrivatePostgres, PrivateRedis
from tests.webhook_receiver import WebhookReceiver

MODEL = "nodule-detector"
SECRET = "faults-secret-0123456789abcdef0123456789abcdef"
CHUNK_TIME_LIMIT_S = 12
IMAGE_TIME_LIMIT_S = 8
CHUNK_START_LIMIT = 2
RECONCILE_INTERVAL_S = 2
PENDING_TIMEOUT_S = 6
SPOOL_IDLE_S = 15
JOB_SIZE = 200
# Every job's job.finished is POSTed to a receiver of the test's (checks.assert_sound); a send
# cut by a kill is sent again after OUTBOX_LEASE_S (over the 12 s dispatch limit).
SECRET_ENV = "MEDFLOW_FAULTS_WEBHOOK_SECRET"
WEBHOOK_SECRET = "whsec-faults-0123456789abcdef"
OUTBOX_LEASE_S = 15


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path_factory.mktemp("faults-redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        yield server.init()
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def webhooks() -> Iterator[WebhookReceiver]:
    os.environ[SECRET_ENV] = WEBHOOK_SECRET  # the stack's processes inherit it
    receiver = WebhookReceiver(WEBHOOK_SECRET).start()
    try:
        yield receiver
    finally:
        receiver.stop()
        os.environ.pop(SECRET_ENV, None)


@pytest.fixture(scope="session")
def fault_settings(
    redis_server: PrivateRedis,
    postgres_server: PrivatePostgres,
    webhooks: WebhookReceiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    from models.build import build_models

    base = tmp_path_factory.mktemp("faults")
    build_models(base / "models", [MODEL])
    settings = replace(
        Settings(env="test"),
        database_url=postgres_server.url,
        redis_url=redis_server.url,
        blob_url=f"file://{base / 'blobs'}",
        model_root=base / "models",
        models=(MODEL,),
        chunk_size=8,
        worker_concurrency=2,
        visibility_timeout_s=120,
        chunk_time_limit_s=CHUNK_TIME_LIMIT_S,
        image_time_limit_s=IMAGE_TIME_LIMIT_S,
        chunk_start_limit=CHUNK_START_LIMIT,
        pending_timeout_s=PENDING_TIMEOUT_S,
        reconcile_interval_s=RECONCILE_INTERVAL_S,
        spool_idle_s=SPOOL_IDLE_S,
        secret_key=SECRET,
        rate_limit="100000/minute",
        fault_hooks=1,
        webhooks=json.dumps({"ris": {"url": f"{webhooks.url}/medflow", "secret_env": SECRET_ENV}}),
        webhook_allow=webhooks.url,
        outbox_interval_s=1,
        outbox_backoff_s=1,
        outbox_lease_s=OUTBOX_LEASE_S,
    )
    settings.check()
    return settings


@pytest.fixture(scope="session")
def stack(
    fault_settings: Settings, webhooks: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[E2EStack]:
    workdir = tmp_path_factory.mktemp("faults-stack")
    running = E2EStack(fault_settings, MODEL, workdir).start()
    running.webhooks = webhooks
    sys.stderr.write(f"\n[faults] stack up in {running.start_s:.1f} s\n")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageMaker]:
    yield ImageMaker(tmp_path_factory.mktemp("faults-images"))


class ImageMaker:
    """Small distinct PNGs (each job its own bytes), optionally with a fault marker appended."""

    def __init__(self, root: Path) -> None:
        self.root, self.made = root, 0

    def job(
        self, count: int, marks: dict[int, bytes] | None = None, side: int = 96, into: str = ""
    ) -> list[Path]:
        """``count`` PNGs of ``side`` px, in a directory of their own when ``into`` names one."""
        marks = marks or {}
        folder = self.root / into
        folder.mkdir(exist_ok=True)
        paths = []
        for index in range(count):
            self.made += 1
            pixels = (np.random.default_rng(self.made).random((side, side)) * 255).astype(np.uint8)
            out = io.BytesIO()
            Image.fromarray(pixels).save(out, "PNG")
            path = folder / f"{self.made}.png"
            path.write_bytes(out.getvalue() + marks.get(index, b""))
            paths.append(path)
        return paths
