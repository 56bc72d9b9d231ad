"""One JSON error shape for every failure the API reports.

``{"error": {"code": "UPPER_SNAKE", "message": "...", "details": {...}}}``: clients branch on
``code``, never on the message. Messages and details name fields, indexes and ids only: a ref, a
file name or a DICOM identifier may carry PHI and must not reach a response or a log line.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

# HTTP errors raised by Flask/Werkzeug (routing, body size, rate limiting) -> stable codes.
HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "REQUEST_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "UNPROCESSABLE",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    503: "UNAVAILABLE",
}


class ApiError(Exception):
    """An error the client can act on; raised anywhere inside a request."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details = details or {}
        self.headers = headers or {}


def error_response(
    code: str, message: str, status: int, details: dict[str, Any] | None = None
) -> Response:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    response = jsonify(body)
    response.status_code = status
    return response


def not_found(what: str) -> ApiError:
    return ApiError(f"{what.upper()}_NOT_FOUND", f"{what} not found", 404)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


def handle_api_error(exc: ApiError) -> Response:
    response = error_response(exc.code, exc.message, exc.status, exc.details)
    response.headers.update(exc.headers)
    return response


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = HTTP_CODES.get(status, "HTTP_ERROR")
    # Werkzeug's descriptions are generic (no request data in them), so they are safe to return.
    response = error_response(code, _first_sentence(exc.description), status)
    for name, value in exc.get_headers():
        if name.lower() != "content-type":  # keeps Allow (405) and Retry-After (429)
            response.headers[name] = value
    return response


def _unexpected(exc: Exception) -> Response:
    # An exception's message can quote request data (SQL parameters hold refs), so the log gets
    # the type and the frames only; the client gets nothing about the cause.
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error("unhandled %s\n%s", type(exc).__name__, frames)
    return error_response("INTERNAL_ERROR", "internal error", 500)


def _first_sentence(text: str | None) -> str:
    if not text:
        return "error"
    return text.split(". ")[0].rstrip(".")
