"""outbox_events.subscriber, source_id: one delivery state per subscriber of an event

Revision ID: 0007_outbox_subscribers
Revises: 0004_job_received_at

Several subscribers (each webhook endpoint, SR delivery) may want one job.finished; a shared
row would resend to every one of them when any fails. The row written with the fact keeps
subscriber NULL; the dispatcher copies it into one row per subscriber (source_id pointing back,
unique per subscriber), each with its own attempts and backoff.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_outbox_subscribers"
down_revision: str | Sequence[str] | None = "0004_job_received_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Batch mode: SQLite adds foreign keys and unique constraints only by copying the table.
    with op.batch_alter_table("outbox_events") as batch:
        batch.add_column(sa.Column("subscriber", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("source_id", ID, nullable=True))
        batch.create_foreign_key(
            op.f("fk_outbox_events_source_id_outbox_events"),
            "outbox_events",
            ["source_id"],
            ["id"],
        )
        batch.create_unique_constraint(
            "uq_outbox_events_source_subscriber", ["source_id", "subscriber"]
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox_events") as batch:
        batch.drop_constraint("uq_outbox_events_source_subscriber", type_="unique")
        batch.drop_constraint(op.f("fk_outbox_events_source_id_outbox_events"), type_="foreignkey")
        batch.drop_column("source_id")
        batch.drop_column("subscriber")
