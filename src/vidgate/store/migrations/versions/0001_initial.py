"""Tasks, attempts and the task event log.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from vidgate.store.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

EventId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("video_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Integer, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("seconds", sa.String(8), nullable=False),
        sa.Column("size", sa.String(16), nullable=False),
        sa.Column("input_reference", sa.Text),
        sa.Column("provider", sa.String(64)),
        sa.Column("external_id", sa.String(255)),
        sa.Column("video_url", sa.Text),
        sa.Column("error_code", sa.String(64)),
        sa.Column("error_message", sa.Text),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("completed_at", UTCDateTime),
        sa.Column("deadline_at", UTCDateTime, nullable=False),
        sa.Column("next_check_at", UTCDateTime),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_until", UTCDateTime),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_tasks_due", "tasks", ["next_check_at"])
    op.create_index("ix_tasks_user_created", "tasks", ["user_id", "created_at", "video_id"])
    op.create_table(
        "attempts",
        sa.Column("video_id", sa.String(64), sa.ForeignKey("tasks.video_id", ondelete="CASCADE")),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("external_id", sa.String(255)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("upstream_status", sa.String(32)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("submitted_at", UTCDateTime),
        sa.Column("finished_at", UTCDateTime),
        sa.Column("error_code", sa.String(64)),
        sa.Column("error_message", sa.Text),
        sa.PrimaryKeyConstraint("video_id", "number"),
        sa.UniqueConstraint("provider", "external_id", name="uq_attempts_provider_external"),
    )
    op.create_table(
        "task_events",
        sa.Column("id", EventId, primary_key=True, autoincrement=True),
        sa.Column("video_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
        sa.Column("task_version", sa.Integer, nullable=False),
    )
    op.create_index("ix_task_events_video", "task_events", ["video_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_task_events_video", table_name="task_events")
    op.drop_table("task_events")
    op.drop_table("attempts")
    op.drop_index("ix_tasks_user_created", table_name="tasks")
    op.drop_index("ix_tasks_due", table_name="tasks")
    op.drop_table("tasks")
