"""The OpenAPI 3.1 document, written by hand and served at GET /openapi.json.

A test compares its paths and methods with the app's URL map, so a route cannot be added
without being documented here. It states every limit the server enforces (page sizes, cursor
ranges, required fields, lengths, parts per request, content types) and every error status an
operation can answer with its codes (issue 9), so a client generated from it never sends what is
refused; schemathesis checks the app against it (tests/integration/api/test_schema_fuzz.py).
The parts cap is a setting, so the document is built per app from its settings.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from api.blueprints.audit import MAX_EVENTS_PAGE
from api.blueprints.job_read import MAX_JOBS_PAGE, MAX_RESULTS_PAGE
from api.blueprints.paging import INT64_MAX
from api.extensions import services
from api.openapi_requests import MODEL_UPLOAD, json_requests, multipart_forms
from api.openapi_schemas import SCHEMAS, ref
from config.settings import Settings

bp = Blueprint("openapi", __name__)

EXTENSION = "medflow.openapi"
ROLES_NOTE = "Roles: {}. Another submitter's job answers 404."
# The codes each error status carries, as api/errors.py, the views and docs/error-codes.md say.
CODES = {
    400: "VALIDATION_ERROR, INVALID_PARAMETER, MALFORMED_MULTIPART, NO_IMAGES, BAD_REQUEST",
    401: "UNAUTHENTICATED (no, unknown or revoked key)",
    403: "FORBIDDEN (the key's role may not do this)",
    404: "JOB_NOT_FOUND, MODEL_NOT_FOUND, NOT_FOUND",
    408: "BODY_READ_TIMEOUT: the body stopped arriving (MEDFLOW_BODY_READ_TIMEOUT_S); "
    "the connection is closed",
    409: "JOB_NOT_OPEN, CONFLICT",
    413: "REQUEST_TOO_LARGE (the body's bytes, its parts or its field text), FILE_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE: send multipart/form-data or application/json",
    422: "IMPORT_REFUSED, IDEMPOTENCY_KEY_REUSED, MODEL_NOT_CLINICAL, INVALID_MODEL, UNPROCESSABLE",
    429: "RATE_LIMITED, UPLOADS_PER_KEY (one key's uploads in progress), QUEUE_FULL, "
    "DEADLINE_UNMEETABLE; with Retry-After",
    503: "SERVICE_UNAVAILABLE (database or Redis), UPLOADS_BUSY, MODEL_NOT_SERVED; "
    "with Retry-After",
}
ALWAYS = (401, 429, 503)  # every /v1 operation: a key, the rate limit, a backing service
BODY = (408, 413, 415)  # every operation that reads a request body


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    found = sorted({*ALWAYS, *statuses})
    return {str(s): _json(ref("Error"), CODES[s]) for s in found}


def _op(summary: str, roles: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "description": ROLES_NOTE.format(roles),
        "responses": responses,
        **extra,
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _limit(maximum: int) -> dict[str, Any]:
    return _query("limit", {"type": "integer", "minimum": 1, "maximum": maximum}, "page size")


def _cursor(name: str, minimum: int, description: str) -> dict[str, Any]:
    # Compared with BIGINT columns: 2**63 and above is a 400, never a database overflow.
    schema = {"type": "integer", "minimum": minimum, "maximum": INT64_MAX}
    return _query(name, schema, description)


def _body(multipart: dict[str, Any] | None, json_schema: str | None) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if multipart is not None:
        content["multipart/form-data"] = {"schema": multipart}
    if json_schema is not None:
        content["application/json"] = {"schema": ref(json_schema)}
    return {"required": True, "content": content}


JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1},
}
UNAUTHENTICATED: dict[str, Any] = {"security": []}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\S"},
    "description": "a retry with the same key and request returns the first job (200); with "
    "another request, 422 IDEMPOTENCY_KEY_REUSED",
}


def _jobs_paths(settings: Settings) -> dict[str, Any]:
    forms = multipart_forms(settings)
    job, submit_codes = _json(ref("Job")), _errors(400, 403, 404, 422, *BODY)
    return {
        "/v1/jobs": {
            "post": _op(
                "Submit a job (multipart uploads, JSON URIs, or an empty open job)",
                "submitter, admin",
                {
                    "202": _json(ref("Job"), "Created"),
                    "200": _json(ref("Job"), "Idempotent replay"),
                    **submit_codes,
                },
                requestBody=_body(forms["submit"], "SubmitRequest"),
                parameters=[IDEMPOTENCY_KEY],
            ),
            "get": _op(
                "List jobs, newest first (a submitter sees its own)",
                "submitter, operator, admin",
                {"200": _json(ref("JobList")), **_errors(400, 403)},
                parameters=[
                    _limit(MAX_JOBS_PAGE),
                    _query("before", {"type": "string"}, "cursor: a job id, from `next`"),
                ],
            ),
        },
        "/v1/infer": {
            "post": _op(
                "One image, answered with its result as soon as it is written (interactive lane)",
                "submitter, admin",
                {
                    "200": _json(ref("InferResult"), "The result (a result row plus job_id)"),
                    "202": _json(ref("Job"), "Not written within timeout_s: poll the job"),
                    **submit_codes,
                },
                requestBody=_body(forms["infer"], "InferRequest"),
                parameters=[IDEMPOTENCY_KEY],
            ),
        },
        "/v1/jobs/{job_id}": {
            "get": _op(
                "A job's status, counts and progress",
                "submitter (own), operator, admin",
                {"200": job, **_errors(400, 403, 404)},
                parameters=[JOB_ID],
            ),
        },
        "/v1/jobs/{job_id}/images": {
            "post": _op(
                "Add images to an open job; they are queued at once",
                "submitter (own), admin",
                {"200": job, **_errors(400, 403, 404, 409, 422, *BODY)},
                parameters=[JOB_ID],
                requestBody=_body(forms["images"], "ImagesRequest"),
            ),
        },
        "/v1/jobs/{job_id}/seal": {
            "post": _op(
                "Seal an open job: no more images will come",
                "submitter (own), admin",
                {"200": job, **_errors(400, 403, 404, 409)},
                parameters=[JOB_ID],
            ),
        },
        "/v1/jobs/{job_id}/cancel": {
            "post": _op(
                "Cancel a job; pending images become cancelled",
                "submitter (own), operator, admin",
                {"200": job, **_errors(400, 403, 404, 409)},
                parameters=[JOB_ID],
            ),
        },
        "/v1/jobs/{job_id}/results": {
            "get": _op(
                "One result per image, in submission order (`format=csv` streams them all)",
                "submitter (own), admin",
                {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {"schema": ref("ResultPage")},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(400, 403, 404),
                },
                parameters=[
                    JOB_ID,
                    _limit(MAX_RESULTS_PAGE),
                    _cursor("after", -1, "position cursor, from `next`"),
                    _query("format", {"enum": ["json", "csv"]}, "json (default) or csv"),
                    _query(
                        "receipts",
                        {"type": "boolean", "default": False},
                        "JSON only: each result's audit event and covering anchor (docs/trust.md)",
                    ),
                ],
            ),
        },
    }


def _other_paths() -> dict[str, Any]:
    items = {"type": "object", "properties": {"items": {"type": "array", "items": ref("Model")}}}
    return {
        "/v1/models": {
            "get": _op(
                "Every model version with its card",
                "submitter, operator, admin",
                {"200": _json(items), **_errors(403)},
            ),
            "post": _op(
                "Register a model version (model.onnx + model.json)",
                "admin",
                {"201": _json(ref("Model"), "Registered"), **_errors(400, 403, 409, 422, *BODY)},
                requestBody=_body(MODEL_UPLOAD, None),
            ),
        },
        "/v1/audit/verify": {
            "get": _op(
                "Verify the audit chain",
                "auditor, admin",
                {"200": _json(ref("ChainReport")), **_errors(403)},
            ),
        },
        "/v1/audit/events": {
            "get": _op(
                "Audit events in chain order",
                "auditor, admin",
                {"200": _json(ref("AuditEventPage")), **_errors(400, 403)},
                parameters=[_limit(MAX_EVENTS_PAGE), _cursor("after_seq", 0, "cursor")],
            ),
        },
        "/healthz": {
            "get": {
                "summary": "The process is alive",
                **UNAUTHENTICATED,
                "responses": {"200": _json({"type": "object"})},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Database and Redis answer (per-model serving status in the body)",
                **UNAUTHENTICATED,
                "responses": {"200": _json(ref("Readiness")), "503": _json(ref("Readiness"))},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (Bearer MEDFLOW_METRICS_TOKEN when one is set)",
                **UNAUTHENTICATED,
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": _json(ref("Error"), CODES[401]),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                **UNAUTHENTICATED,
                "responses": {"200": _json({"type": "object"})},
            }
        },
    }


def build_document(settings: Settings) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MedFlow",
            "version": "1",
            "description": "Batch inference of ONNX models over medical images.",
        },
        "security": [{"bearer": []}],
        "paths": {**_jobs_paths(settings), **_other_paths()},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {**SCHEMAS, **json_requests(settings)},
        },
    }


@bp.get("/openapi.json")
def openapi() -> dict[str, Any]:
    found: dict[str, Any] | None = current_app.extensions.get(EXTENSION)
    if found is None:
        found = build_document(services().settings)
        current_app.extensions[EXTENSION] = found
    return found
