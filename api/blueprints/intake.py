"""Reading the images of a request (multipart uploads or JSON URIs) and handing them to intake.

The intake service (``intake.service``) stores them as blobs before any transaction opens;
here the request is parsed, the uploads' formats counted for the response, and intake's
refusals turned into API errors. Uploads arrive already in spools of the store (see
``api.upload``), so a request never holds its images in memory and storing one is a rename.
Nothing here logs or returns a ref or a file name.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from flask import request
from werkzeug.datastructures import FileStorage

from api.errors import ApiError
from api.extensions import services
from api.input_guard import refuse_nul_in
from intake.blobs import Stored as StoredBlobs
from intake.errors import FileTooLarge, IntakeRefused
from pipeline.errors import ImageError
from pipeline.sniff import sniff_format

# A URI or ref longer than these is a 400 (issue 9: the document states every limit). A ref
# defaults to its URI, so it may be as long.
MAX_URI = 2048
MAX_REF = MAX_URI
SNIFF_BYTES = 512  # enough for every signature sniff_format knows (DICOM's is at 128..132)
TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


@dataclass
class Intake:
    """What a request asks for; ``uploads`` or ``uris`` (one or neither), not yet stored."""

    model: str | None
    seal: bool
    uploads: list[FileStorage] = field(default_factory=list)
    uris: list[tuple[str, str]] = field(default_factory=list)  # (uri, ref)

    @property
    def count(self) -> int:
        return len(self.uploads) + len(self.uris)


@dataclass
class Stored:
    images: StoredBlobs  # (ref, BlobInfo) in submission order
    formats: dict[str, int]  # sniffed format -> number of uploads, "unknown" included


def read_intake() -> Intake:
    return without_nul(_read_intake())


def without_nul(intake: Intake) -> Intake:
    """400 for a NUL in the model, a file name, a URI or a ref (Postgres text cannot hold one:
    a 500 before, found by schemathesis)."""
    refuse_nul_in("model", intake.model or "")
    for upload in intake.uploads:
        refuse_nul_in("files", upload.filename or "")
    for uri, ref in intake.uris:
        refuse_nul_in("images", uri + ref)
    return intake


def _read_intake() -> Intake:
    if request.mimetype == "multipart/form-data":
        form = request.form
        uploads = request.files.getlist("files")
        return Intake(form.get("model"), _flag(form.get("seal")), uploads=uploads)
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise invalid("body", "must be a JSON object")
        model = body.get("model")
        if model is not None and not isinstance(model, str):
            raise invalid("model", "must be a string")
        images = _uris(body.get("images", []), services().settings.max_form_parts)
        return Intake(model, _flag(body.get("seal")), uris=images)
    raise ApiError("UNSUPPORTED_MEDIA_TYPE", "send multipart/form-data or application/json", 415)


def store(intake: Intake) -> Stored:
    """Store the request's images; on return they are durable (the batch synced them)."""
    service = services().intake
    try:
        if intake.uploads:
            formats = Counter(_sniff(upload) for upload in intake.uploads)
            files = [(_ref(i, upload), upload.stream) for i, upload in enumerate(intake.uploads)]
            return Stored(service.store_files(files), dict(formats))
        return Stored(service.import_uris(intake.uris), {})
    except IntakeRefused as exc:
        status = 413 if isinstance(exc, FileTooLarge) else 422
        raise ApiError(exc.code, exc.message, status, exc.details) from None


def invalid(name: str, message: str) -> ApiError:
    return ApiError("VALIDATION_ERROR", f"{name} {message}", 400, {"field": name})


def _flag(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return value is not False  # sealing is the default
    if str(value).lower() in TRUE:
        return True
    if str(value).lower() in FALSE:
        return False
    raise invalid("seal", "must be true or false")


def _uris(images: Any, max_images: int) -> list[tuple[str, str]]:
    if not isinstance(images, list):
        raise invalid("images", "must be a list")
    if len(images) > max_images:  # as many as a multipart request may have parts
        raise ApiError(
            "REQUEST_TOO_LARGE", f"more than {max_images} images", 413, {"max_images": max_images}
        )
    found = []
    for index, item in enumerate(images):
        uri = item.get("uri") if isinstance(item, dict) else None
        ref = item.get("ref", uri) if isinstance(item, dict) else None
        if not (_text(uri, MAX_URI) and _text(ref, MAX_REF)):
            raise ApiError(
                "VALIDATION_ERROR",
                f"each image needs a uri (and an optional ref), of 1 to {MAX_URI} characters",
                400,
                {"field": "images", "index": index},
            )
        found.append((uri, ref))
    return found


def check_uri(uri: Any) -> str:
    """A single image's ``uri`` (POST /v1/infer), as each of ``images`` is checked."""
    if not _text(uri, MAX_URI):
        raise invalid("uri", f"is required, 1 to {MAX_URI} characters (or send a 'file' part)")
    return str(uri)


def _text(value: Any, limit: int) -> TypeGuard[str]:
    return isinstance(value, str) and 0 < len(value) <= limit


def _ref(index: int, upload: FileStorage) -> str:
    return upload.filename or f"upload-{index}"


def _sniff(upload: FileStorage) -> str:
    # Only counted for the response: an unknown format is not refused here, it becomes a failed
    # result with its error code, like any other bad image.
    head = upload.stream.read(SNIFF_BYTES)
    upload.stream.seek(0)
    try:
        return str(sniff_format(head))
    except ImageError:
        return "unknown"
