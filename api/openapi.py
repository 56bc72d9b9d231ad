"""The OpenAPI 3.1 document, written by hand and served at GET /openapi.json.

A test compares its paths and methods with the app's URL map, so a route cannot be added
without being documented here.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from api.openapi_schemas import SCHEMAS, ref

bp = Blueprint("openapi", __name__)

ROLES_NOTE = "Roles: {}. Another submitter's job answers 404."
NOT_SERVED_NOTE = (
    " 503 MODEL_NOT_SERVED (with Retry-After): the model is not one this deployment runs"
    " (MEDFLOW_MODELS) and no live worker serves it."
)


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"$ref": "#/components/responses/Error"} for s in (401, 429, 503, *statuses)}


def _op(
    summary: str, roles: str, responses: dict[str, Any], note: str = "", **extra: Any
) -> dict[str, Any]:
    return {
        "summary": summary,
        "description": ROLES_NOTE.format(roles) + note,
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


JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size")
IMAGES_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    "model": {"type": "string", "description": "name[:version] (POST /v1/jobs)"},
                    "seal": {"type": "boolean", "default": True},
                    "deadline": {
                        "type": ["number", "string"],
                        "description": "seconds from now or an ISO 8601 timestamp: "
                        "429 DEADLINE_UNMEETABLE when the queue cannot finish by then",
                    },
                },
            }
        },
        "application/json": {"schema": ref("ImagesRequest")},
    },
}
UNAUTHENTICATED: dict[str, Any] = {"security": []}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": 200},
}

PATHS: dict[str, Any] = {
    "/v1/jobs": {
        "post": _op(
            "Submit a job (multipart uploads, JSON URIs, or an empty open job)",
            "submitter, admin",
            {
                "202": _json(ref("Job"), "Created"),
                "200": _json(ref("Job"), "Idempotent replay"),
                **_errors(400, 403, 404, 413, 415, 422),
            },
            NOT_SERVED_NOTE,
            requestBody=IMAGES_BODY,
            parameters=[IDEMPOTENCY_KEY],
        ),
        "get": _op(
            "List jobs, newest first (a submitter sees its own)",
            "submitter, operator, admin",
            {"200": _json(ref("JobList")), **_errors(400, 403)},
            parameters=[LIMIT, _query("before", {"type": "string"}, "cursor from `next`")],
        ),
    },
    "/v1/infer": {
        "post": _op(
            "One image, answered with its result as soon as it is written (interactive lane)",
            "submitter, admin",
            {
                "200": _json(ref("InferResult"), "The result (a result row plus job_id)"),
                "202": _json(ref("Job"), "Not written within timeout_s: poll the job"),
                **_errors(400, 403, 404, 413, 415, 422),
            },
            NOT_SERVED_NOTE,
            requestBody={
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file", "model"],
                            "properties": {
                                "file": {"type": "string", "format": "binary"},
                                "model": {"type": "string"},
                                "timeout_s": {"type": "number", "default": 10, "maximum": 60},
                                "deadline": {"type": ["number", "string"]},
                            },
                        }
                    },
                    "application/json": {"schema": ref("InferRequest")},
                },
            },
            parameters=[IDEMPOTENCY_KEY],
        ),
    },
    "/v1/jobs/{job_id}": {
        "get": _op(
            "A job's status, counts and progress",
            "submitter (own), operator, admin",
            {"200": _json(ref("Job")), **_errors(403, 404)},
            parameters=[JOB_ID],
        ),
    },
    "/v1/jobs/{job_id}/images": {
        "post": _op(
            "Add images to an open job; they are queued at once",
            "submitter (own), admin",
            {"200": _json(ref("Job")), **_errors(400, 403, 404, 409, 413, 415, 422)},
            parameters=[JOB_ID],
            requestBody=IMAGES_BODY,
        ),
    },
    "/v1/jobs/{job_id}/seal": {
        "post": _op(
            "Seal an open job: no more images will come",
            "submitter (own), admin",
            {"200": _json(ref("Job")), **_errors(400, 403, 404, 409)},
            parameters=[JOB_ID],
        ),
    },
    "/v1/jobs/{job_id}/cancel": {
        "post": _op(
            "Cancel a job; pending images become cancelled",
            "submitter (own), operator, admin",
            {"200": _json(ref("Job")), **_errors(403, 404, 409)},
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
                LIMIT,
                _query("after", {"type": "integer"}, "position cursor from `next`"),
                _query("format", {"enum": ["json", "csv"]}, "json (default) or csv"),
                _query(
                    "receipts",
                    {"type": "boolean", "default": False},
                    "JSON only: each result's audit event and covering anchor (docs/trust.md)",
                ),
            ],
        ),
    },
    "/v1/models": {
        "get": _op(
            "Every model version with its card",
            "submitter, operator, admin",
            {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {"items": {"type": "array", "items": ref("Model")}},
                    }
                ),
                **_errors(403),
            },
        ),
        "post": _op(
            "Register a model version (model.onnx + model.json)",
            "admin",
            {"201": _json(ref("Model"), "Registered"), **_errors(400, 403, 409, 413, 422)},
            requestBody={
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["model.onnx", "model.json"],
                            "properties": {
                                "model.onnx": {"type": "string", "format": "binary"},
                                "model.json": {"type": "string", "format": "binary"},
                                # Required when the card sets
                                # preprocess.reduced_jpeg2000_tolerance: JPEG 2000 DICOM files
                                # on which the allowance is proven.
                                "probe": {
                                    "type": "array",
                                    "items": {"type": "string", "format": "binary"},
                                    "maxItems": 8,
                                },
                            },
                        }
                    }
                },
            },
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
            parameters=[LIMIT, _query("after_seq", {"type": "integer"}, "cursor")],
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
            "summary": "Prometheus metrics",
            **UNAUTHENTICATED,
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
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

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "MedFlow",
        "version": "1",
        "description": "Batch inference of ONNX models over medical images.",
    },
    "security": [{"bearer": []}],
    "paths": PATHS,
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": SCHEMAS,
        "responses": {"Error": _json(ref("Error"), "Error (see error.code)")},
    },
}


@bp.get("/openapi.json")
def openapi() -> dict[str, Any]:
    return DOCUMENT
