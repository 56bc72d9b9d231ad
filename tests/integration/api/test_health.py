"""Probes and metrics: unauthenticated, bounded labels, nothing about images or patients."""

from __future__ import annotations

import io
import secrets
import threading
import time
from collections import Counter
from dataclasses import replace

import pytest

from api import readiness
from api.app import create_app
from api.readiness import monitor
from tests.integration.api.conftest import MODEL, UNSERVED, sent_chunks
from tests.integration.workers.helpers import WorkerProcess


def test_healthz(client):
    response = client.get("/healthz")
    assert (response.status_code, response.json) == (200, {"status": "ok"})


def test_readyz_is_ready_without_a_worker_and_names_the_unserved_model(env, client):
    monitor(env.app).refresh()
    response = client.get("/readyz")
    assert response.status_code == 200, response.json
    assert response.json["status"] == "ready"
    checks = response.json["checks"]
    assert checks["database"] == {"ok": True}
    assert checks["redis"] == {"ok": True}
    unserved = response.json["models"][UNSERVED]
    assert unserved == {"queue": f"infer.{UNSERVED}", "workers": 0, "served": False}
    text = client.get("/metrics").get_data(as_text=True)
    assert f'medflow_model_served{{model="{UNSERVED}"}} 0.0' in text


def test_readyz_reports_a_down_database_and_redis(env):
    broken = replace(
        env.settings,
        database_url="postgresql+psycopg2://nobody@127.0.0.1:1/none",
        redis_url="redis://127.0.0.1:1/0",
    )
    app = create_app(broken)
    monitor(app).refresh()
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    checks = response.json["checks"]
    assert checks["database"]["ok"] is False and checks["redis"]["ok"] is False
    assert checks["database"]["error"] == "OperationalError"


@pytest.mark.slow
def test_readyz_counts_a_real_worker_once_it_consumes_the_queue(env, tmp_path):
    # A model of its own, so the worker consumes no queue that other tests read.
    model = f"health-{secrets.token_hex(4)}"
    app = create_app(replace(env.settings, models=(model,)))
    monitor(app).refresh()
    not_yet = app.test_client().get("/readyz")
    assert not_yet.status_code == 200  # ready: jobs for the model wait in its queue
    assert not_yet.json["models"][model]["served"] is False
    worker = WorkerProcess(env.settings, tmp_path / "worker.log", model, preload=False).start()
    try:
        deadline = time.monotonic() + 60
        while not monitor(app).refresh().models[model]["served"]:
            assert time.monotonic() < deadline, monitor(app).snapshot
            time.sleep(0.5)
        response = app.test_client().get("/readyz")
    finally:
        worker.stop()
    assert response.json["status"] == "ready"
    assert response.json["models"][model] == {
        "queue": f"infer.{model}",
        "workers": 1,
        "served": True,
    }


def test_readyz_counts_the_workers_of_each_model(env, client, keys, monkeypatch):
    served = Counter({f"infer.{MODEL}": 2})
    monkeypatch.setattr(readiness, "_workers", lambda up: ({"ok": True, "nodes": 2}, served))
    monitor(env.app).refresh()
    response = client.get("/readyz")
    assert (response.status_code, response.json["status"]) == (200, "ready")
    assert response.json["models"][MODEL] == {
        "queue": f"infer.{MODEL}",
        "workers": 2,
        "served": True,
    }
    text = client.get("/metrics").get_data(as_text=True)
    assert f'medflow_model_workers{{model="{MODEL}"}} 2.0' in text
    assert f'medflow_model_served{{model="{MODEL}"}} 1.0' in text
    listed = client.get("/v1/models", headers=keys.auth("submitter")).json["items"]
    assert {(m["name"], m["workers"], m["served"]) for m in listed} >= {(MODEL, 2, True)}


def test_readyz_answers_within_50_ms_while_the_workers_take_seconds_to_answer(
    env, client, monkeypatch
):
    monitor(env.app).refresh()
    hung = threading.Event()

    def slow_workers(up):
        hung.set()
        time.sleep(2.0)  # a broadcast nobody answers in time, a slow broker
        return {"ok": True, "nodes": 0}, Counter()

    monkeypatch.setattr(readiness, "_workers", slow_workers)
    monkeypatch.setattr(readiness, "REFRESH_S", 0.0)
    app_monitor = monitor(env.app)  # its thread now refreshes back to back, each taking 2 s
    assert hung.wait(10)
    slowest = 0.0
    for _ in range(20):
        started = time.perf_counter()
        response = client.get("/readyz")
        slowest = max(slowest, time.perf_counter() - started)
        assert response.status_code == 200
    assert slowest < 0.050, f"slowest /readyz took {slowest * 1000:.1f} ms"
    assert app_monitor.snapshot is not None


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


def test_metrics_behind_a_token_when_one_is_set(env):
    app = create_app(replace(env.settings, metrics_token="scrape-token-0123456789"))
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    right = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})
    assert right.status_code == 200 and "medflow_http_requests_total" in right.get_data(True)


def test_a_request_id_is_taken_or_made_and_returned(client):
    given = client.get("/healthz", headers={"X-Request-Id": "trace-0123456789"})
    assert given.headers["X-Request-Id"] == "trace-0123456789"
    made = client.get("/healthz", headers={"X-Request-Id": "bad id <script>"})
    assert len(made.headers["X-Request-Id"]) == 32 and "bad" not in made.headers["X-Request-Id"]
