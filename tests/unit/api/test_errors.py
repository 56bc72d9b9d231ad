"""The error shape, on a bare Flask app (no services)."""

from __future__ import annotations

import pytest
from flask import Flask, abort

from api.errors import ApiError, register_error_handlers


@pytest.fixture
def client():
    app = Flask("t")
    register_error_handlers(app)

    @app.get("/api-error")
    def api_error() -> None:
        raise ApiError("JOB_NOT_OPEN", "the job is sealed", 409, {"status": "queued"})

    @app.get("/abort/<int:status>")
    def aborts(status: int) -> None:
        abort(status)

    return app.test_client()


def test_api_error_shape(client):
    response = client.get("/api-error")
    assert response.status_code == 409
    assert response.json == {
        "error": {
            "code": "JOB_NOT_OPEN",
            "message": "the job is sealed",
            "details": {"status": "queued"},
        }
    }


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "BAD_REQUEST"),
        (404, "NOT_FOUND"),
        (413, "REQUEST_TOO_LARGE"),
        (429, "RATE_LIMITED"),
        (500, "INTERNAL_ERROR"),
    ],
)
def test_http_errors_have_codes(client, status, code):
    response = client.get(f"/abort/{status}")
    assert response.status_code == status
    assert response.json["error"]["code"] == code
    assert response.json["error"]["message"]
