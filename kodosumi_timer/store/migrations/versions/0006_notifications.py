"""notifications per schedule: the schedule's notify URL, events and secret, the delivery
outbox, the notifier's cursor, an index on when runs ended, and when each user last
looked at their schedules

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from kodosumi_timer.store.tables import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN of nullable columns: SQLite needs no table rebuild for these
    op.add_column("schedule", sa.Column("notify_url", sa.String(2000)))
    op.add_column("schedule", sa.Column("notify_events", sa.String(200)))
    op.add_column("schedule", sa.Column("notify_secret", sa.String(128)))
    op.create_index("ix_run_finished", "schedule_run", ["finished_at"])
    op.create_table(
        "notification",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("schedule_id", sa.String(32), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("delivered", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("run_id", "event", name="uq_notification_run_event"),
    )
    op.create_index("ix_notification_due", "notification", ["status", "next_at"])
    op.create_index("ix_notification_schedule", "notification", ["schedule_id", "run_id"])
    op.create_table(
        "notify_cursor",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "schedule_seen",
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("schedule_seen")
    op.drop_table("notify_cursor")
    op.drop_index("ix_notification_schedule", table_name="notification")
    op.drop_index("ix_notification_due", table_name="notification")
    op.drop_table("notification")
    op.drop_index("ix_run_finished", table_name="schedule_run")
    with op.batch_alter_table("schedule") as batch:
        batch.drop_column("notify_secret")
        batch.drop_column("notify_events")
        batch.drop_column("notify_url")
