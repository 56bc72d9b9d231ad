"""Result receipts: the audit event that recorded a result, and the anchor that covers it.

A client keeps a receipt with a result. From the receipt alone it can check that the event
describes this result (image id, input sha256, status, the scores' digest) and hashes to
``hash`` after ``prev_hash``, and that the anchor's Ed25519 signature is the deployment's (public
key only). That ``hash`` is the chain's event at ``seq`` up to the anchor's head is what
``GET /v1/audit/verify`` (or an auditor walking ``/v1/audit/events`` from ``seq`` to the
anchor) confirms; a result row changed later no longer matches its receipt. docs/trust.md
gives the steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.anchors import Anchor
from db.audit import event_body
from db.models import AuditEvent
from db.result_check import RESULT_ACTION


def result_receipts(
    session: Session, image_ids: Sequence[int], anchors: Sequence[Anchor]
) -> dict[int, dict[str, Any]]:
    """``{image_id: receipt}`` for those images whose result is in the chain."""
    if not image_ids:
        return {}
    query = select(AuditEvent).where(
        AuditEvent.object_type == "image",
        AuditEvent.object_id.in_([str(i) for i in image_ids]),
        AuditEvent.action == RESULT_ACTION,
    )
    ordered = sorted(anchors, key=lambda a: a.seq)
    return {int(event.object_id): _receipt(event, ordered) for event in session.scalars(query)}


def _receipt(event: AuditEvent, anchors: Sequence[Anchor]) -> dict[str, Any]:
    covering = next((a for a in anchors if a.seq >= event.seq), None)
    return {
        "seq": event.seq,
        "hash": event.hash,
        "prev_hash": event.prev_hash,
        "event": event_body(event),
        # The first anchor at or after the event (null until the collector signs one).
        "anchor": None if covering is None else _anchor(covering),
    }


def _anchor(anchor: Anchor) -> dict[str, Any]:
    return {"seq": anchor.seq, "hash": anchor.hash, "at": anchor.at, "signature": anchor.signature}
