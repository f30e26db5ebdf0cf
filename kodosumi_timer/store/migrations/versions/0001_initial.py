"""schedule and schedule_run tables

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

from kodosumi_timer.store.tables import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedule",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("system", sa.Boolean(), nullable=False),
        sa.Column("expose_name", sa.String(200), nullable=False),
        sa.Column("flow_url", sa.String(1000), nullable=False),
        sa.Column("title", sa.String(200)),
        sa.Column("schedule_type", sa.String(8), nullable=False),
        sa.Column("cron_expression", sa.String(1000)),
        sa.Column("run_at", UTCDateTime()),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("catchup", sa.String(8), nullable=False),
        sa.Column("overlap", sa.String(8), nullable=False),
        sa.Column("end_at", UTCDateTime()),
        sa.Column("max_runs", sa.Integer()),
        sa.Column("run_count", sa.Integer(), nullable=False),
        sa.Column("next_run", UTCDateTime()),
        sa.Column("last_run", UTCDateTime()),
        sa.Column("last_fid", sa.String(64)),
        sa.Column("last_status", sa.String(16)),
        sa.Column("note", sa.Text()),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("updated", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_schedule_owner", "schedule", ["owner"])
    op.create_index("ix_schedule_next_run", "schedule", ["next_run"])
    op.create_table(
        "schedule_run",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("schedule_id", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("slot", UTCDateTime(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("fired_at", UTCDateTime()),
        sa.Column("fid", sa.String(64)),
        sa.Column("reason", sa.Text()),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("timer_id", sa.String(64)),
        sa.UniqueConstraint("schedule_id", "slot", "attempt", name="uq_run_slot_attempt"),
    )
    op.create_index("ix_run_schedule", "schedule_run", ["schedule_id", "slot"])
    op.create_index("ix_run_status", "schedule_run", ["status"])


def downgrade() -> None:
    op.drop_table("schedule_run")
    op.drop_table("schedule")
