"""The JSON (and CSV) shapes the API returns for results, models and audit events.

Kept apart from the views so the JSON body, the CSV columns and the OpenAPI schemas are read in
one place. Refs appear here only: they go to the job's owner (or an admin) and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from db.models import AuditEvent, Image, ModelVersion

CSV_FIXED = (
    "position",
    "image_id",
    "ref",
    "status",
    "error_code",
    "error_message",
    "sha256",
    "format",
    "width",
    "height",
    "positive",
)
# A cell starting with one of these is a formula in a spreadsheet (CSV injection): refs and
# messages come from clients and files, so they are neutralised with a leading quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def timestamp(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite returns naive datetimes, written as UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def pseudonyms(image: Image) -> dict[str, str]:
    """The keyed pseudonyms a worker put into the image's facts (never raw identifiers)."""
    facts = image.facts or {}
    return {k: str(v) for k, v in facts.items() if "pseudonym" in k}


def result_item(image: Image) -> dict[str, Any]:
    return {
        "image_id": image.id,
        "position": image.position,
        "ref": image.ref,
        "status": str(image.status),
        "error_code": image.error_code,
        "error_message": image.error_message,
        "scores": image.scores,
        "positive": image.positive,
        "sha256": image.blob_key,
        "format": image.format,
        "width": image.width,
        "height": image.height,
        "timings_ms": image.timings_ms,
        "pseudonyms": pseudonyms(image),
        "completed_at": timestamp(image.completed_at),
    }


def csv_header(labels: Sequence[str]) -> list[str]:
    return [*CSV_FIXED, *(f"score:{label}" for label in labels), "pseudonyms"]


def csv_row(image: Image, labels: Sequence[str]) -> list[Any]:
    scores = image.scores or {}
    fixed = [
        image.position,
        image.id,
        safe_cell(image.ref),
        str(image.status),
        image.error_code,
        safe_cell(image.error_message),
        image.blob_key,
        image.format,
        image.width,
        image.height,
        ";".join(image.positive or []),
    ]
    named = pseudonyms(image)
    pseudonym_cell = ";".join(f"{k}={v}" for k, v in sorted(named.items()))
    return [*fixed, *(scores.get(label, "") for label in labels), pseudonym_cell]


def safe_cell(text: str | None) -> str | None:
    if text and text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def model_item(model: ModelVersion) -> dict[str, Any]:
    return {
        "name": model.name,
        "version": model.version,
        "ref": model.ref,
        "active": model.active,
        "sha256": model.sha256,
        "registered_at": timestamp(model.registered_at),
        "card": model.card,
    }


def audit_event_item(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "occurred_at": timestamp(event.occurred_at),
        "actor": event.actor,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "payload": event.payload,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def intended_use(card: dict[str, Any]) -> str:
    """The model's intended use, on every result: "clinical", "research" or "demo" (issue 9).

    A card that does not say (registered before the field existed) is not clinical.
    """
    return str(card.get("intended_use") or "research")
