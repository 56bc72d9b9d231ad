"""Audit endpoints (auditor and admin): verify the chain, page through its events."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from sqlalchemy import select

from api.auth import caller, require
from api.blueprints.paging import int_arg
from api.extensions import services
from api.serialize import audit_event_item
from db.anchor_policy import verify_deployment
from db.audit import append_event
from db.models import AuditEvent, Role
from db.session import session_scope

bp = Blueprint("audit", __name__, url_prefix="/v1/audit")

MAX_EVENTS_PAGE = 1000


@bp.get("/verify")
@require(Role.AUDITOR, Role.ADMIN)
def verify() -> dict[str, Any]:
    state = services()
    with session_scope(state.sessions) as session:
        # Saved anchors catch a rewrite of the whole chain by someone without the signing key.
        report = verify_deployment(session, state.settings)
    # The verification is itself recorded, after the walk, so it never checks its own event.
    with session_scope(state.sessions) as session:
        append_event(
            session,
            actor=caller().actor,
            action="audit.verified",
            object_type="audit_chain",
            object_id=str(report.head_seq),
            payload={"ok": report.ok, "events": report.events},
        )
    return report.to_dict()


@bp.get("/events")
@require(Role.AUDITOR, Role.ADMIN)
def events() -> dict[str, Any]:
    after = int_arg("after_seq", default=0, minimum=0)
    limit = int_arg("limit", default=100, minimum=1, maximum=MAX_EVENTS_PAGE)
    query = select(AuditEvent).where(AuditEvent.seq > after).order_by(AuditEvent.seq).limit(limit)
    with session_scope(services().sessions) as session:
        rows = [audit_event_item(event) for event in session.scalars(query)]
    body: dict[str, Any] = {"items": rows, "next": None}
    if len(rows) == limit:
        body["next"] = f"{request.path}?after_seq={rows[-1]['seq']}&limit={limit}"
    return body
