"""Request bodies of the OpenAPI document, with the limits the views enforce (issue 9).

Each number here is the one the server checks, imported from where it is checked, so the two
cannot drift: a body within these schemas is never refused for its shape (it may still be for
its content: an unknown model, a URI outside the import roots).
"""

from __future__ import annotations

from typing import Any

from api.blueprints.infer import MAX_TIMEOUT_S
from api.blueprints.intake import MAX_REF, MAX_URI
from api.blueprints.models import MAX_PROBES
from api.lane import MAX_DEADLINE_S
from api.upload import DEFAULT_MAX_FIELD_BYTES
from config.settings import Settings

TEXT_FIELDS = 3  # model, seal, deadline: the parts a submission has besides its files
MODEL = {"type": "string", "minLength": 1, "description": "name or name:version"}
SEAL = {"type": "boolean", "default": True, "description": "false: an open job, filled later"}
DEADLINE = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DEADLINE_S},
        {"type": "string", "format": "date-time"},
    ],
    "description": "seconds from now, or an ISO 8601 timestamp with a time zone, at most "
    f"{MAX_DEADLINE_S} s ahead: 429 DEADLINE_UNMEETABLE when the queue cannot finish by then",
}
TIMEOUT_S = {"type": "number", "default": 10, "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT_S}
URI = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_URI,
    "description": "s3://bucket/key under MEDFLOW_S3_IMPORT_ROOTS, or file:///path under "
    "MEDFLOW_IMPORT_ROOTS (422 IMPORT_REFUSED otherwise)",
}
FILE = {"type": "string", "format": "binary"}
MODEL_UPLOAD = {
    "type": "object",
    "required": ["model.onnx", "model.json"],
    "properties": {
        "model.onnx": FILE,
        "model.json": FILE,
        # Required when the card sets preprocess.reduced_jpeg2000_tolerance: JPEG 2000 DICOM
        # files on which the allowance is proven.
        "probe": {"type": "array", "items": FILE, "maxItems": MAX_PROBES},
    },
}


def max_files(settings: Settings) -> int:
    """Files one multipart request may carry: the parts cap less the text fields."""
    return settings.max_form_parts - TEXT_FIELDS


def _images(settings: Settings, minimum: int) -> dict[str, Any]:
    image = {
        "type": "object",
        "required": ["uri"],
        "properties": {
            "uri": URI,
            "ref": {"type": "string", "minLength": 1, "maxLength": MAX_REF},
        },
    }
    return {
        "type": "array",
        "minItems": minimum,
        "maxItems": settings.max_form_parts,  # as many as a multipart request's parts
        "items": image,
    }


def _files(settings: Settings, minimum: int) -> dict[str, Any]:
    return {
        "type": "array",
        "minItems": minimum,
        "maxItems": max_files(settings),
        "items": FILE,
        "description": f"at most {settings.max_form_parts} parts in all, text fields included "
        f"(MEDFLOW_MAX_FORM_PARTS), {DEFAULT_MAX_FIELD_BYTES} bytes of field text, and "
        f"{settings.max_request_bytes} bytes in the body (MEDFLOW_MAX_REQUEST_BYTES); each file "
        f"at most {settings.limits.max_bytes} bytes (413 FILE_TOO_LARGE)",
    }


def multipart_forms(settings: Settings) -> dict[str, dict[str, Any]]:
    """The multipart/form-data bodies: a submission, more images, one image to infer."""
    submit = {"model": MODEL, "seal": SEAL, "deadline": DEADLINE, "files": _files(settings, 0)}
    return {
        "submit": {"type": "object", "required": ["model"], "properties": submit},
        "images": {
            "type": "object",
            "required": ["files"],
            "properties": {"files": _files(settings, 1)},
        },
        "infer": {
            "type": "object",
            "required": ["file", "model"],
            "properties": {
                "file": FILE,
                "model": MODEL,
                "timeout_s": TIMEOUT_S,
                "deadline": DEADLINE,
            },
        },
    }


def json_requests(settings: Settings) -> dict[str, Any]:
    """The application/json bodies, as component schemas."""
    return {
        "SubmitRequest": {
            "type": "object",
            "required": ["model"],
            "properties": {
                "model": MODEL,
                "seal": SEAL,
                "deadline": DEADLINE,
                "images": _images(settings, 0),
            },
        },
        "ImagesRequest": {
            "type": "object",
            "required": ["images"],
            "properties": {"images": _images(settings, 1)},
        },
        "InferRequest": {
            "type": "object",
            "required": ["model", "uri"],
            "properties": {
                "model": MODEL,
                "uri": URI,
                "timeout_s": TIMEOUT_S,
                "deadline": DEADLINE,
            },
        },
    }
