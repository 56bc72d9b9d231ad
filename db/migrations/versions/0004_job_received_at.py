"""jobs.received_at: when an open job last received images (an idle one is sealed)

Revision ID: 0004_job_received_at
Revises: 0006_trust_boundaries

An upload whose client went away leaves its job open for ever; the reconciler seals an open
job that received nothing for MEDFLOW_OPEN_JOB_IDLE_S. Existing rows keep NULL, read as their
created_at.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_job_received_at"
down_revision: str | Sequence[str] | None = "0006_trust_boundaries"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("received_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("received_at")
