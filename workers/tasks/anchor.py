"""``medflow.anchor`` (beat, in the collector; and after every job's end): sign the chain's head.

The collector is the only process given the anchor signing key. Each run checks the events
added since the last anchor it signed (links, hashes, result rows) and refuses to sign a broken
chain: an anchor vouches for everything before it. Logs carry seqs only.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from celery import Task, shared_task

from config.settings import Settings
from workers import db_sessions
from workers.app import settings_of

log = logging.getLogger(__name__)

ANCHOR_TASK = "medflow.anchor"
_last: dict[str, Any] = {}  # anchors store -> the last anchor this process signed


@shared_task(name=ANCHOR_TASK, bind=True, ignore_result=True)
def anchor(self: Task) -> int | None:
    settings = settings_of(self.app)
    if not (settings.anchor_signing_key and settings.audit_anchors):
        return None  # anchoring not configured (development without `medflow up`)
    return anchor_head(settings)


def anchor_head(settings: Settings) -> int | None:
    """Verify the new events, sign the head, store the anchor; its seq, or None if refused."""
    from db.anchor_keys import load_signing_key
    from db.anchors import sign_head, write_anchor
    from db.audit import verify_chain
    from db.session import session_scope

    store = str(settings.audit_anchors)
    with session_scope(db_sessions.session_factory(settings)) as session:
        since = _since(session, settings)
        report = verify_chain(session, since=since)
    if not report.ok:
        log.error(
            "audit chain broken at seq %s (%s): not anchored", report.first_bad_seq, report.reason
        )
        return None
    key = load_signing_key(str(settings.anchor_signing_key))
    signed = sign_head(report.head_seq, report.head_hash, datetime.now(UTC), key)
    write_anchor(signed, store, endpoint_url=settings.s3_endpoint_url)
    _last[store] = signed
    log.info("audit chain anchored at seq %d", signed.seq)
    return signed.seq


def _since(session: Any, settings: Settings) -> Any:
    """The newest anchor whose event still has its hash: verification resumes after it.

    From this process's memory, else the store's newest; an unreadable store or a moved
    event means a full walk from the genesis (which then reports what is wrong).
    """
    from db.anchors import AnchorUnreadable, saved_anchors
    from db.models import AuditEvent

    since = _last.get(str(settings.audit_anchors))
    if since is None:
        try:
            anchors = saved_anchors(settings)
        except AnchorUnreadable:
            return None
        since = max(anchors, key=lambda a: a.seq, default=None)
    if since is None or since.seq == 0:
        return None
    stored = session.get(AuditEvent, since.seq)
    return since if stored is not None and stored.hash == since.hash else None
