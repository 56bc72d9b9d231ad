"""Verify the chain as the deployment requires: its anchors readable, signed, and fresh.

Anchors that are optional are no anchors: in production verify fails when the chain has
events but no anchor, when the newest anchor is older than the beat's interval allows
(``2 x MEDFLOW_ANCHOR_INTERVAL_S + 60 s``), or when any stored anchor cannot be read (a junk
file is reported as ``anchor_unreadable``, naming the file, never a crash).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from db.anchor_keys import AnchorKeyError, load_verify_key
from db.anchors import Anchor, AnchorUnreadable, read_anchors, saved_anchors
from db.audit import TIMESTAMP_FORMAT, ChainReport, verify_chain

STALE_GRACE_S = 60


def verify_deployment(session: Session, settings: Any, source: str | None = None) -> ChainReport:
    """verify_chain against the stored anchors (``source`` or ``settings.audit_anchors``)."""
    try:
        anchors = _anchors(settings, source)
    except AnchorUnreadable as exc:
        return _refused("anchor_unreadable", str(exc))
    try:
        key = load_verify_key(settings.anchor_verify_key) if settings.anchor_verify_key else None
    except AnchorKeyError as exc:
        return _refused("anchor_unverifiable", str(exc))
    if anchors and key is None:
        return _refused("anchor_unverifiable", "anchors found but MEDFLOW_ANCHOR_VERIFY_KEY unset")
    report = verify_chain(session, anchors, key=key)
    if settings.env != "production" or not report.ok:
        return report
    return require_fresh(report, anchors, max_age_s(settings), datetime.now(UTC))


def max_age_s(settings: Any) -> int:
    return 2 * int(settings.anchor_interval_s) + STALE_GRACE_S


def require_fresh(
    report: ChainReport, anchors: list[Anchor], max_age: float, now: datetime
) -> ChainReport:
    """``report`` failed with ``no_anchor`` or ``anchor_stale`` when the anchors do not cover it."""
    if not anchors:
        if report.head_seq == 0:
            return report  # an empty chain has nothing to pin yet
        return replace(report, ok=False, first_bad_seq=1, reason="no_anchor")
    newest = max(anchors, key=lambda a: (a.at, a.seq))
    signed_at = datetime.strptime(newest.at, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    if now - signed_at > timedelta(seconds=max_age):
        detail = f"newest anchor signed at {newest.at}, older than {max_age:.0f} s"
        return replace(
            report, ok=False, first_bad_seq=newest.seq + 1, reason="anchor_stale", detail=detail
        )
    return report


def _anchors(settings: Any, source: str | None) -> list[Anchor]:
    if source:
        return read_anchors(source, endpoint_url=settings.s3_endpoint_url)
    return saved_anchors(settings)


def _refused(reason: str, detail: str) -> ChainReport:
    return ChainReport(False, 0, 0, "", None, reason, detail)
