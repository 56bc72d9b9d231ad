"""interactive lane: jobs get a lane, a deadline and a queue ticket; model_queues counts

Revision ID: 0005_interactive_lane
Revises: 0007_outbox_subscribers

model_queues starts from what is pending now, so the counters are exact from the first job
after the upgrade (admitted - done = images still pending, per model and lane).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_interactive_lane"
down_revision: str | Sequence[str] | None = "0007_outbox_subscribers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LANES = ("batch", "interactive")

SEED = """
INSERT INTO model_queues (model_name, batch_admitted, batch_done, interactive_admitted,
                          interactive_done, window_images)
SELECT jobs.model_name, COUNT(images.id), 0, 0, 0, 0
FROM jobs JOIN images ON images.job_id = jobs.id
WHERE images.status = 'pending'
GROUP BY jobs.model_name
"""


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column(
                "lane",
                sa.Enum(*LANES, name="lane", native_enum=False, create_constraint=True, length=32),
                nullable=False,
                server_default="batch",
            )
        )
        batch.add_column(sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("queue_end", sa.BigInteger(), nullable=True))
    op.create_table(
        "model_queues",
        sa.Column("model_name", sa.String(length=200), nullable=False),
        sa.Column("batch_admitted", sa.BigInteger(), nullable=False),
        sa.Column("batch_done", sa.BigInteger(), nullable=False),
        sa.Column("interactive_admitted", sa.BigInteger(), nullable=False),
        sa.Column("interactive_done", sa.BigInteger(), nullable=False),
        sa.Column("rate_per_s", sa.Float(), nullable=True),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_images", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("model_name", name=op.f("pk_model_queues")),
    )
    op.execute(SEED)


def downgrade() -> None:
    op.drop_table("model_queues")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("queue_end")
        batch.drop_column("deadline_at")
        batch.drop_constraint(op.f("ck_jobs_lane"), type_="check")  # else SQLite's rebuild keeps it
        batch.drop_column("lane")
