"""The neutral request on tasks; each attempt's binding, result expiry and usage.

Existing attempts were all made through the /v1/videos adapter; their binding is filled
in lazily (an attempt without one is reached through the provider of its name).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from vidgate.store.schema import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("params", sa.JSON))
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("binding", sa.JSON))
        batch.add_column(sa.Column("result_expires_at", UTCDateTime))
        batch.add_column(sa.Column("usage", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("usage")
        batch.drop_column("result_expires_at")
        batch.drop_column("binding")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("params")
