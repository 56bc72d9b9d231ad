"""Error shapes, authentication failures, body limits, rate limits and security headers."""

from __future__ import annotations

import io
import logging
from dataclasses import replace

import pytest
from sqlalchemy import select

from api.app import create_app
from db.keys import revoke_key
from db.models import AuditEvent
from db.session import session_scope
from pipeline.limits import ImageLimits
from tests.integration.api.conftest import MODEL, PNG


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    error = response.json["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    return error


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Bearer mf_nope_nope", "Bearer not-a-key"],
)
def test_missing_or_invalid_key_is_401(client, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.get("/v1/jobs", headers=headers)
    assert_error(response, 401, "UNAUTHENTICATED")
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="medflow"')


def test_revoked_key_is_401(client, keys, sessions):
    assert client.get("/v1/jobs", headers=keys.auth("submitter")).status_code == 200
    with session_scope(sessions) as session:
        revoke_key(session, keys.ids["submitter"], "service:test")
    response = client.get("/v1/jobs", headers=keys.auth("submitter"))
    assert_error(response, 401, "UNAUTHENTICATED")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_routing_errors_have_the_shape(client, keys):
    assert_error(client.get("/v1/nothing", headers=keys.auth("admin")), 404, "NOT_FOUND")
    assert_error(client.get("/nothing"), 404, "NOT_FOUND")
    response = client.delete("/v1/jobs", headers=keys.auth("admin"))
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}


def test_unsupported_body_is_415(client, keys):
    response = client.post(
        "/v1/jobs", data="model=tiny", headers=keys.auth("submitter"), content_type="text/plain"
    )
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_request_over_max_request_bytes_is_413(env, keys):
    app = create_app(replace(env.settings, max_request_bytes=1000))
    data = {"model": MODEL, "files": [(io.BytesIO(PNG + b"\x00" * 5000), "a.png")]}
    response = app.test_client().post("/v1/jobs", data=data, headers=keys.auth("submitter"))
    assert_error(response, 413, "REQUEST_TOO_LARGE")


def test_file_over_the_image_limit_is_413_naming_its_index(env, keys):
    app = create_app(replace(env.settings, limits=ImageLimits(max_bytes=100)))
    files = [(io.BytesIO(PNG), "small.png"), (io.BytesIO(PNG + b"\x00" * 200), "big.png")]
    response = app.test_client().post(
        "/v1/jobs", data={"model": MODEL, "files": files}, headers=keys.auth("submitter")
    )
    error = assert_error(response, 413, "FILE_TOO_LARGE")
    assert error["details"]["index"] == 1
    assert "big.png" not in response.get_data(as_text=True)


def test_rate_limit_is_per_key_and_429(env, keys):
    app = create_app(replace(env.settings, rate_limit="3/minute"))
    client = app.test_client()
    statuses = [client.get("/v1/jobs", headers=keys.auth("operator")).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.get("/v1/jobs", headers=keys.auth("operator"))
    assert_error(response, 429, "RATE_LIMITED")
    assert int(response.headers["Retry-After"]) > 0
    # Another key has its own budget; probes are never limited.
    assert client.get("/v1/jobs", headers=keys.auth("admin")).status_code == 200
    assert all(client.get("/healthz").status_code == 200 for _ in range(5))


def test_unexpected_errors_are_500_without_details_in_body_or_log(env, caplog):
    app = create_app(env.settings)
    leaked = "patient DOE^JOHN scan-1.dcm"  # as an exception built from request data would say

    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError(leaked)

    caplog.set_level(logging.ERROR)
    response = app.test_client().get("/v1/boom")
    assert_error(response, 500, "INTERNAL_ERROR")
    assert "DOE" not in response.get_data(as_text=True)
    assert "RuntimeError" in caplog.text
    assert "DOE" not in caplog.text and "scan-1" not in caplog.text


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/nothing", "/healthz", "/openapi.json"])
def test_security_headers_on_every_response(client, keys, path):
    response = client.get(path, headers=keys.auth("submitter"))
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    if path.startswith("/v1/"):
        assert response.headers["Cache-Control"] == "no-store"


def test_no_ref_or_file_name_in_logs_or_audit(client, keys, sessions, caplog):
    caplog.set_level(logging.DEBUG)
    name = "DOE_JOHN_1985-02-03.png"
    data = {"model": MODEL, "files": [(io.BytesIO(PNG), name)]}
    job = client.post("/v1/jobs", data=data, headers=keys.auth("submitter")).json
    client.get(f"{job['url']}/results", headers=keys.auth("submitter"))
    assert "DOE_JOHN" not in caplog.text
    with session_scope(sessions) as session:
        payloads = [str(e.payload) for e in session.scalars(select(AuditEvent))]
    assert payloads and not any("DOE_JOHN" in p for p in payloads)
