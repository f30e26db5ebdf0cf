"""the inputs of one run, when they differ from its schedule's (a trigger URL's call may
merge inputs of its own over the stored ones)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a nullable column: a plain ADD COLUMN on SQLite and PostgreSQL, no table rebuild
    op.add_column("schedule_run", sa.Column("inputs", sa.JSON()))


def downgrade() -> None:
    with op.batch_alter_table("schedule_run") as batch:
        batch.drop_column("inputs")
