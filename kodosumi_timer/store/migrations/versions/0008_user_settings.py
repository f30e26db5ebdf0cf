"""a user's default notification for their schedules without one (issue 12), and where
each delivery's target came from

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from kodosumi_timer.store.tables import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_settings",
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("notify_url", sa.String(2000), nullable=True),
        sa.Column("notify_events", sa.String(200), nullable=True),
        sa.Column("notify_secret", sa.String(128), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    # NOT NULL with a server default: a plain ADD COLUMN on SQLite and PostgreSQL, and
    # every delivery queued before came from its schedule
    op.add_column("notification", sa.Column("source", sa.String(8), nullable=False,
                                            server_default="schedule"))


def downgrade() -> None:
    with op.batch_alter_table("notification") as batch:
        batch.drop_column("source")
    op.drop_table("user_settings")
