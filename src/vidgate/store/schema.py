"""The tables (ARCHITECTURE.md "Data"). Alembic migrations create exactly these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python; naive UTC in SQLite (whose strings then sort right)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

# SQLite only autoincrements INTEGER PRIMARY KEY columns.
EventId = BigInteger().with_variant(Integer(), "sqlite")

tasks = Table(
    "tasks",
    metadata,
    Column("video_id", String(64), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("progress", Integer, nullable=False, default=0),
    Column("message", Text, nullable=False, default=""),
    Column("prompt", Text, nullable=False),
    Column("model", String(128), nullable=False),
    Column("seconds", String(8), nullable=False),
    Column("size", String(16), nullable=False),
    Column("input_reference", Text),
    Column("params", JSON),
    Column("provider", String(64)),
    Column("external_id", String(255)),
    Column("video_url", Text),
    Column("error_code", String(64)),
    Column("error_message", Text),
    Column("metadata", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime),
    Column("deadline_at", UTCDateTime, nullable=False),
    Column("next_check_at", UTCDateTime),
    Column("lease_owner", String(128)),
    Column("lease_until", UTCDateTime),
    Column("attempt", Integer, nullable=False, default=0),
    Column("version", Integer, nullable=False, default=1),
    Index("ix_tasks_due", "next_check_at"),
    Index("ix_tasks_user_created", "user_id", "created_at", "video_id"),
    Index("ix_tasks_user_status", "user_id", "status"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("video_id", String(64), ForeignKey("tasks.video_id", ondelete="CASCADE")),
    Column("number", Integer, nullable=False),
    Column("provider", String(64), nullable=False),
    Column("external_id", String(255)),
    Column("state", String(16), nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    Column("upstream_status", String(32)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("submitted_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("error_code", String(64)),
    Column("error_message", Text),
    Column("binding", JSON),
    Column("result_expires_at", UTCDateTime),
    Column("usage", JSON),
    PrimaryKeyConstraint("video_id", "number"),
    UniqueConstraint("provider", "external_id", name="uq_attempts_provider_external"),
    Index("ix_attempts_external", "external_id"),
)

task_events = Table(
    "task_events",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("video_id", String(64), nullable=False),
    Column("type", String(32), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("timestamp_ms", BigInteger, nullable=False),
    Column("task_version", Integer, nullable=False),
    Index("ix_task_events_video", "video_id", "id"),
)

# API keys (auth mode "apikey"): only a hash of each secret is kept.
api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("secret_hash", String(128), nullable=False),
    Column("label", String(200), nullable=False, default=""),
    Column("admin", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Index("ix_api_keys_user", "user_id"),
)

# Idempotency-Key on create: one task per (user, key) while the key is remembered.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", String(128), nullable=False),
    Column("key", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("video_id", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("user_id", "key"),
    Index("ix_idempotency_keys_expires", "expires_at"),
)

# Outbound webhooks (vidgate.webhooks): per-user endpoints, the per-task signing secret of
# each user, and one delivery row per (target, event), the durable at-least-once outbox.
# Secrets are signing keys (HMAC), not passwords: they are kept so that they can sign.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("url", Text, nullable=False),
    Column("event_types", JSON),  # null: every type
    Column("secret", String(128), nullable=False),
    Column("previous_secret", String(128)),  # still signs until previous_until (rotation)
    Column("previous_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime),
    Column("disabled_reason", String(200)),
    Column("deleted_at", UTCDateTime),
    Index("ix_webhook_endpoints_user", "user_id"),
)

webhook_task_secrets = Table(
    "webhook_task_secrets",
    metadata,
    Column("user_id", String(128), primary_key=True),
    Column("secret", String(128), nullable=False),
    Column("previous_secret", String(128)),
    Column("previous_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),  # the webhook-id header, stable on retries
    # An endpoint's id, or "task:<videoId>" for a task's own webhookUrl.
    Column("target", String(80), nullable=False),
    Column("endpoint_id", String(40)),
    Column("user_id", String(128), nullable=False),
    Column("video_id", String(64), nullable=False),
    Column("event_id", EventId, nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("url", Text, nullable=False),
    Column("body", Text, nullable=False),  # the exact JSON sent, the same on every attempt
    Column("status", String(16), nullable=False),  # pending|succeeded|failed|cancelled
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(128)),
    Column("lease_until", UTCDateTime),
    Column("last_status_code", Integer),
    Column("last_error", String(300)),
    Column("last_attempt_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    UniqueConstraint("target", "event_id", name="uq_webhook_deliveries_target_event"),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_order", "target", "video_id", "event_id"),
)

# Where the dispatcher has read task_events up to (one row per name).
webhook_cursors = Table(
    "webhook_cursors",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("event_id", EventId, nullable=False),
)
