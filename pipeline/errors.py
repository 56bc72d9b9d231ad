"""Error codes for one image: what a user looks up when an image fails.

Every failure of one image maps to exactly one :class:`ErrorCode`. Messages describe the
file's structure only (sizes, tags, syntaxes), never its contents: a DICOM header carries PHI,
and these messages reach logs, result rows and task payloads.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Stable, documented codes; `docs/error-codes.md` explains each one."""

    # The bytes themselves
    EMPTY_FILE = "EMPTY_FILE"
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    UNKNOWN_FORMAT = "UNKNOWN_FORMAT"
    TRUNCATED_FILE = "TRUNCATED_FILE"
    CORRUPT_IMAGE = "CORRUPT_IMAGE"
    # Geometry and sample type, checked from the header before any pixel is decoded
    IMAGE_TOO_SMALL = "IMAGE_TOO_SMALL"
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"
    DECOMPRESSION_BOMB = "DECOMPRESSION_BOMB"
    UNSUPPORTED_SAMPLE_TYPE = "UNSUPPORTED_SAMPLE_TYPE"
    UNSUPPORTED_COLOR_MODE = "UNSUPPORTED_COLOR_MODE"
    # DICOM specifics
    DICOM_INVALID = "DICOM_INVALID"
    DICOM_NO_PIXEL_DATA = "DICOM_NO_PIXEL_DATA"
    DICOM_MULTIFRAME = "DICOM_MULTIFRAME"
    DICOM_UNSUPPORTED_TRANSFER_SYNTAX = "DICOM_UNSUPPORTED_TRANSFER_SYNTAX"
    DICOM_DECODER_MISSING = "DICOM_DECODER_MISSING"
    DICOM_PIXEL_DATA_MISMATCH = "DICOM_PIXEL_DATA_MISMATCH"
    DICOM_UNSUPPORTED_PHOTOMETRIC = "DICOM_UNSUPPORTED_PHOTOMETRIC"
    # Beyond decoding (used by the workers; listed here so there is one registry of codes)
    BLOB_MISSING = "BLOB_MISSING"
    FETCH_FAILED = "FETCH_FAILED"
    INFERENCE_FAILED = "INFERENCE_FAILED"
    ATTEMPTS_EXHAUSTED = "ATTEMPTS_EXHAUSTED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    # A bad image fails alone: retried by itself, it still killed or hung its worker process
    WORKER_CRASHED = "WORKER_CRASHED"
    TIMED_OUT = "TIMED_OUT"
    # Refusals of a whole submission (the API answers 429; interactive lane, issue 14)
    DEADLINE_UNMEETABLE = "DEADLINE_UNMEETABLE"
    QUEUE_FULL = "QUEUE_FULL"


class ImageError(Exception):
    """One image cannot be used; carries the code, a PHI-free message and small details."""

    def __init__(self, code: ErrorCode, message: str, **details: str | int | float) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details


class ModelError(Exception):
    """A model or its card is unusable; the message names the field that is wrong."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message if field is None else f"{field}: {message}")
        self.field = field
