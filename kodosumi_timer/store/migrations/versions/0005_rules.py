"""schedules as rich as Temporal's (issue 13): interval rules, excluded dates, DST
policy, jitter, run timeout, pausing after failures, a trigger URL

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS: tuple[sa.Column[object], ...] = (
    # interval rules: slots at anchor + k * every_seconds
    sa.Column("every_seconds", sa.Integer()),
    sa.Column("anchor", sa.DateTime(timezone=True)),
    # ["2027-12-24", ...]: dates in the schedule's zone without slots
    sa.Column("exclude_dates", sa.JSON()),
    # DST policy; NULL: the Debian cron rules
    sa.Column("dst_gap", sa.String(8)),
    sa.Column("dst_repeat", sa.String(8)),
    # each slot is sent at slot + a deterministic offset in [0, jitter) seconds
    sa.Column("jitter", sa.Integer()),
    # an execution running longer is ended through kodosumi and recorded timed_out
    sa.Column("timeout", sa.Integer()),
    # paused after this many runs in a row ended error/failed/rejected/timed_out
    sa.Column("pause_after_failures", sa.Integer()),
    sa.Column("failures_in_row", sa.Integer(), nullable=False, server_default="0"),
    # the trigger URL's token, stored only as its SHA-256; whether a call may pass inputs
    sa.Column("hook_hash", sa.String(64)),
    sa.Column("hook_inputs", sa.Boolean(), nullable=False, server_default=sa.false()),
)


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("schedule", column.copy())
    op.create_index("ux_schedule_hook_hash", "schedule", ["hook_hash"], unique=True)
    # "buffer_one" is longer than the 8 the overlap column had (SQLite does not enforce a
    # text's length: its table is not rebuilt for it)
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("schedule", "overlap", type_=sa.String(16),
                        existing_type=sa.String(8), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("schedule", "overlap", type_=sa.String(8),
                        existing_type=sa.String(16), existing_nullable=False)
    op.drop_index("ux_schedule_hook_hash", table_name="schedule")
    with op.batch_alter_table("schedule") as batch:
        for column in reversed(COLUMNS):
            batch.drop_column(column.name)
