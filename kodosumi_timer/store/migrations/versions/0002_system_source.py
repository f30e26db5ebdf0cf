"""system schedules: where a synced system schedule was declared, and its sync key

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN of nullable columns: SQLite needs no table rebuild for these
    op.add_column("schedule", sa.Column("system_source", sa.String(8)))
    op.add_column("schedule", sa.Column("system_key", sa.String(1000)))
    # unique, NULLs allowed many times (user schedules) on SQLite and PostgreSQL alike
    op.create_index("ux_schedule_system_key", "schedule", ["system_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_schedule_system_key", table_name="schedule")
    with op.batch_alter_table("schedule") as batch:
        batch.drop_column("system_key")
        batch.drop_column("system_source")
