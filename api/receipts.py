"""Receipts on result items (``GET /v1/jobs/<id>/results?receipts=true``): see db/receipts.py."""

from __future__ import annotations

import logging
from typing import Any

from api.extensions import services
from db.anchors import Anchor, AnchorUnreadable, saved_anchors
from db.receipts import result_receipts

log = logging.getLogger(__name__)


def add_receipts(session: Any, items: list[dict[str, Any]]) -> None:
    """Each item gets ``receipt``: the chain event of its result and the anchor covering it, or
    null while the image is pending."""
    found = result_receipts(session, [item["image_id"] for item in items], _anchors())
    for item in items:
        item["receipt"] = found.get(item["image_id"])


def _anchors() -> list[Anchor]:
    try:
        return saved_anchors(services().settings)
    except AnchorUnreadable as exc:  # verify reports it; a receipt just goes without an anchor
        log.warning("receipts without anchors: %s", exc)
        return []
