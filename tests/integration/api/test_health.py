"""Probes and metrics: unauthenticated, bounded labels, nothing about images or patients."""

from __future__ import annotations

import io
import secrets
import time
from dataclasses import replace

import pytest

from api.app import create_app
from tests.integration.api.conftest import MODEL, UNSERVED, sent_chunks
from tests.integration.workers.helpers import WorkerProcess


def test_healthz(client):
    response = client.get("/healthz")
    assert (response.status_code, response.json) == (200, {"status": "ok"})


def test_readyz_names_the_missing_worker_queue(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json["checks"]
    assert checks["database"] == {"ok": True}
    assert checks["redis"] == {"ok": True}
    assert checks["workers"]["ok"] is False
    assert f"infer.{UNSERVED}" in checks["workers"]["missing"]


def test_readyz_reports_a_down_database_and_redis(env):
    broken = replace(
        env.settings,
        database_url="postgresql+psycopg2://nobody@127.0.0.1:1/none",
        redis_url="redis://127.0.0.1:1/0",
    )
    response = create_app(broken).test_client().get("/readyz")
    assert response.status_code == 503
    checks = response.json["checks"]
    assert checks["database"]["ok"] is False and checks["redis"]["ok"] is False
    assert checks["database"]["error"] == "OperationalError"


@pytest.mark.slow
def test_readyz_is_ready_once_a_real_worker_consumes_each_queue(env, tmp_path):
    # A model of its own, so the worker consumes no queue that other tests read.
    model = f"health-{secrets.token_hex(4)}"
    app = create_app(replace(env.settings, models=(model,)))
    not_yet = app.test_client().get("/readyz")
    assert not_yet.status_code == 503
    assert not_yet.json["checks"]["workers"]["missing"] == [f"infer.{model}"]
    worker = WorkerProcess(env.settings, tmp_path / "worker.log", model, preload=False).start()
    try:
        deadline = time.monotonic() + 60
        while (response := app.test_client().get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, response.json
            time.sleep(0.5)  # the app caches the broadcast's answer for a few seconds
    finally:
        worker.stop()
    assert response.json["status"] == "ready"
    assert response.json["checks"]["workers"] == {
        "ok": True,
        "missing": [],
        "queues": [f"infer.{model}"],
    }


def test_metrics_counts_requests_jobs_images_and_queues(client, keys, make_job, redis_client):
    upload = {"model": MODEL, "files": [(io.BytesIO(b"x"), "DOE.png")]}
    client.post("/v1/jobs", data=upload, headers=keys.auth("submitter"))
    job = make_job(2, seal=False)
    client.get(f"/v1/jobs/{job.id}", headers=keys.auth("submitter"))
    client.get("/v1/jobs", headers={})
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert 'medflow_http_requests_total{endpoint="/v1/jobs",method="POST",status="202"} 1.0' in text
    assert 'endpoint="/v1/jobs/<job_id>",method="GET",status="200"' in text
    assert 'medflow_http_requests_total{endpoint="/v1/jobs",method="GET",status="401"} 1.0' in text
    assert 'medflow_jobs{status="queued"} 1.0' in text
    assert 'medflow_jobs{status="open"} 1.0' in text
    assert 'medflow_images{status="pending"} 3.0' in text
    depth = len(sent_chunks(redis_client))
    assert f'medflow_queue_depth{{queue="infer.{MODEL}"}} {float(depth)}' in text
    assert 'medflow_metrics_source_up{source="database"} 1.0' in text
    # No job ids, refs or file names in any label.
    assert job.id not in text and "DOE" not in text
