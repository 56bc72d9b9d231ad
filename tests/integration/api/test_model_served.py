"""A job for a model that no worker serves, and that the deployment does not run, is refused at
submission with 503 MODEL_NOT_SERVED (issue 9); before, it stayed queued forever.

A model in the deployment's list (``settings.models``) is accepted without a live worker: under
KEDA its workers scale from zero, and the job is what starts one.
"""

from __future__ import annotations

import io
import secrets
import time
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from api.app import create_app
from api.readiness import monitor
from db.models import Job, ModelVersion
from db.session import session_scope
from tests.integration.api.conftest import CARD, MODEL, PNG
from tests.integration.workers.helpers import WorkerProcess


def register(env, name: str) -> None:
    with session_scope(env.sessions) as session:
        card = {**CARD, "name": name}
        session.add(ModelVersion(name=name, version="1", sha256="cd" * 32, card=card, active=True))


def submit(client, keys, model: str):
    data = {"model": model, "files": [(io.BytesIO(PNG), "a.png")]}
    return client.post("/v1/jobs", data=data, headers=keys.auth("submitter"))


def infer(client, keys, model: str):
    data = {"model": model, "file": (io.BytesIO(PNG), "a.png"), "timeout_s": "0.1"}
    return client.post(
        "/v1/infer", data=data, headers=keys.auth("submitter"), content_type="multipart/form-data"
    )


def jobs(env) -> int:
    with session_scope(env.sessions) as session:
        return session.scalar(select(func.count()).select_from(Job))


def test_a_model_nobody_serves_or_deploys_is_refused_with_503(env, keys):
    model = f"unlisted-{secrets.token_hex(4)}"  # no worker of any test session consumes it
    register(env, model)
    monitor(env.app).refresh()  # what the background thread does every 2 s
    client = env.app.test_client()
    for response in (submit(client, keys, model), infer(client, keys, model)):
        assert response.status_code == 503, response.json
        assert response.json["error"]["code"] == "MODEL_NOT_SERVED"
        assert response.json["error"]["details"] == {"model": model}
        assert response.headers["Retry-After"] == "30"
    assert jobs(env) == 0
    assert list(env.blobs.root.rglob("*")) == []  # refused before any upload was stored


def test_a_deployed_model_is_accepted_without_a_live_worker(env, keys):
    # MODEL is in settings.models and no worker serves it here: KEDA would start one.
    monitor(env.app).refresh()
    assert monitor(env.app).snapshot.models[MODEL]["workers"] == 0
    response = submit(env.app.test_client(), keys, MODEL)
    assert response.status_code == 202, response.json


@pytest.mark.slow
def test_a_model_outside_the_list_is_accepted_once_a_worker_serves_it(env, keys, tmp_path):
    model = f"adhoc-{secrets.token_hex(4)}"
    register(env, model)
    app = create_app(replace(env.settings, models=(MODEL,)))
    monitor(app).refresh()
    assert submit(app.test_client(), keys, model).status_code == 503
    worker = WorkerProcess(env.settings, tmp_path / "worker.log", model, preload=False).start()
    try:
        deadline = time.monotonic() + 60
        while not monitor(app).refresh().queues.get(f"infer.{model}"):
            assert time.monotonic() < deadline, monitor(app).snapshot
            time.sleep(0.5)
        response = submit(app.test_client(), keys, model)
    finally:
        worker.stop()
    assert response.status_code == 202, response.json
