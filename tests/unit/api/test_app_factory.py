"""The app factory connects nothing: building an app against servers that do not exist works,
and only a request that needs them fails (with the error shape)."""

from __future__ import annotations

import json
from dataclasses import replace

from api.app import create_app
from api.openapi import build_document
from config.settings import Settings

NOWHERE = replace(
    Settings(),
    env="test",
    database_url="postgresql+psycopg2://nobody@127.0.0.1:1/none",
    redis_url="redis://127.0.0.1:1/0",
    blob_url="file:///nonexistent/blobs",
)


def test_create_app_against_unreachable_servers_connects_nothing():
    app = create_app(NOWHERE)
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert app.config["MAX_CONTENT_LENGTH"] == NOWHERE.max_request_bytes


def requests_counted(app):
    counter = app.extensions["medflow.metrics"].requests
    return sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total"))


def test_two_apps_in_one_process_do_not_share_state():
    first, second = create_app(NOWHERE), create_app(replace(NOWHERE, rate_limit="1/minute"))
    assert first.extensions["medflow"].settings.rate_limit == NOWHERE.rate_limit
    assert second.extensions["medflow"].settings.rate_limit == "1/minute"
    assert second.extensions["medflow"].intake.settings.rate_limit == "1/minute"
    for _ in range(3):
        first.test_client().get("/healthz")
    # Each app counts its own requests (a shared registry would count them twice, or refuse).
    assert (requests_counted(first), requests_counted(second)) == (3, 0)


def test_v1_without_a_database_is_503_with_the_shape():
    response = (
        create_app(NOWHERE)
        .test_client()
        .get("/v1/jobs", headers={"Authorization": "Bearer mf_abc_def"})
    )
    assert response.status_code == 503
    assert response.json["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert response.json["error"]["details"] == {"service": "database"}


def test_openapi_document_is_plain_json():
    document = build_document(Settings())
    assert json.loads(json.dumps(document)) == document
