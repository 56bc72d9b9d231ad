"""Response schemas of the OpenAPI document: the JSON shapes of api/serialize.py and db.jobs
(request bodies: api/openapi_requests.py)."""

from __future__ import annotations

from typing import Any


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


OBJECT = {"type": "object"}
NULLABLE_STRING = {"type": ["string", "null"]}
SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "details"],
                "properties": {
                    "code": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"},
                    "message": {"type": "string"},
                    "details": OBJECT,
                },
            }
        },
    },
    "Job": {
        "type": "object",
        "required": ["id", "url", "status"],
        "properties": {
            "id": {"type": "string"},
            "url": {"type": "string"},
            "status": {
                "enum": [
                    "open",
                    "queued",
                    "running",
                    "completed",
                    "completed_with_errors",
                    "failed",
                    "cancelled",
                ]
            },
            "model": OBJECT,
            "counts": OBJECT,
            "progress": {"type": "number"},
            "lane": {"enum": ["batch", "interactive"]},
            "deadline_at": NULLABLE_STRING,
            "eta": {"oneOf": [ref("Eta"), {"type": "null"}]},
        },
    },
    "Eta": {
        "type": "object",
        "description": "When the job should finish: (images_ahead + images_left) / rate_per_s. "
        "`at` and `seconds` are null while the model's rate is unmeasured; the whole ETA is "
        "null once the job is final.",
        "properties": {
            "at": NULLABLE_STRING,
            "seconds": {"type": ["number", "null"]},
            "basis": {
                "type": "object",
                "properties": {
                    "images_ahead": {"type": "integer"},
                    "images_left": {"type": "integer"},
                    "rate_per_s": {"type": ["number", "null"]},
                },
            },
        },
    },
    "InferResult": {
        "allOf": [
            ref("Result"),
            {"type": "object", "properties": {"job_id": {"type": "string"}}},
        ]
    },
    "JobList": {
        "type": "object",
        "properties": {"items": {"type": "array", "items": ref("Job")}, "next": NULLABLE_STRING},
    },
    "Result": {
        "type": "object",
        "properties": {
            "image_id": {"type": "integer"},
            "position": {"type": "integer"},
            "ref": {"type": "string"},
            "status": {"enum": ["pending", "succeeded", "failed", "cancelled"]},
            "error_code": NULLABLE_STRING,
            "error_message": NULLABLE_STRING,
            "scores": {"type": ["object", "null"]},
            "positive": {"type": ["array", "null"]},
            "sha256": {"type": "string"},
            "format": NULLABLE_STRING,
            "width": {"type": ["integer", "null"]},
            "height": {"type": ["integer", "null"]},
            "timings_ms": {"type": ["object", "null"]},
            "pseudonyms": OBJECT,
            "intended_use": {
                "enum": ["clinical", "research", "demo"],
                "description": "the model card's intended use: only clinical results are for "
                "patient care",
            },
            "receipt": {
                "type": ["object", "null"],
                "description": "with receipts=true: the image.result event (seq, hash, "
                "prev_hash, event) and the first anchor at or after it (null until signed)",
            },
        },
    },
    "ResultPage": {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": ref("Result")},
            "next": NULLABLE_STRING,
        },
    },
    "Model": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "active": {"type": "boolean"},
            "sha256": {"type": "string"},
            "card": OBJECT,
            # Live workers consuming the model's queue, from the readiness thread's last look
            # (null before its first one).
            "workers": {"type": ["integer", "null"]},
            "served": {"type": ["boolean", "null"]},
        },
    },
    "ChainReport": {
        "type": "object",
        "properties": {
            "ok": {"type": "boolean"},
            "events": {"type": "integer"},
            "head_seq": {"type": "integer"},
            "head_hash": {"type": "string"},
            "first_bad_seq": {"type": ["integer", "null"]},
            "reason": NULLABLE_STRING,
            "detail": NULLABLE_STRING,
        },
    },
    "AuditEventPage": {
        "type": "object",
        "properties": {"items": {"type": "array", "items": OBJECT}, "next": NULLABLE_STRING},
    },
    "Readiness": {
        "type": "object",
        "properties": {
            "status": {"enum": ["ready", "not_ready", "starting"]},
            "checks": OBJECT,
            # Per model: {"queue", "workers", "served"}; never part of readiness.
            "models": OBJECT,
            "age_s": {"type": "number"},
        },
    },
}
