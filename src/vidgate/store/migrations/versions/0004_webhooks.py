"""Outbound webhooks: endpoints, per-task secrets, deliveries and the dispatcher's cursor.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from vidgate.store.schema import EventId, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("event_types", sa.JSON),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("previous_secret", sa.String(128)),
        sa.Column("previous_until", UTCDateTime),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("disabled_at", UTCDateTime),
        sa.Column("disabled_reason", sa.String(200)),
        sa.Column("deleted_at", UTCDateTime),
    )
    op.create_index("ix_webhook_endpoints_user", "webhook_endpoints", ["user_id"])
    op.create_table(
        "webhook_task_secrets",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("previous_secret", sa.String(128)),
        sa.Column("previous_until", UTCDateTime),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("target", sa.String(80), nullable=False),
        sa.Column("endpoint_id", sa.String(40)),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("video_id", sa.String(64), nullable=False),
        sa.Column("event_id", EventId, nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_until", UTCDateTime),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_error", sa.String(300)),
        sa.Column("last_attempt_at", UTCDateTime),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime),
        sa.UniqueConstraint("target", "event_id", name="uq_webhook_deliveries_target_event"),
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    op.create_index(
        "ix_webhook_deliveries_order", "webhook_deliveries", ["target", "video_id", "event_id"]
    )
    op.create_table(
        "webhook_cursors",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("event_id", EventId, nullable=False),
    )
    # Events from before webhooks existed have nowhere to go (no endpoint, no task's
    # webhookUrl): the dispatcher starts after them rather than reading them all again.
    op.execute(
        "INSERT INTO webhook_cursors (name, event_id) "
        "SELECT 'dispatcher', COALESCE(MAX(id), 0) FROM task_events"
    )


def downgrade() -> None:
    op.drop_table("webhook_cursors")
    op.drop_index("ix_webhook_deliveries_order", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_task_secrets")
    op.drop_index("ix_webhook_endpoints_user", table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
