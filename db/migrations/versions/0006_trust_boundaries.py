"""Trust boundaries: audit events found by object (result receipts)

Revision ID: 0006_trust_boundaries
Revises: 0003_outbox

``GET /v1/jobs/<id>/results?receipts=true`` looks up each image's ``image.result`` event by
``(object_type, object_id)``: without an index, every page would scan the whole chain.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006_trust_boundaries"
down_revision: str | Sequence[str] | None = "0003_outbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_audit_events_object", "audit_events", ["object_type", "object_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_object", table_name="audit_events")
