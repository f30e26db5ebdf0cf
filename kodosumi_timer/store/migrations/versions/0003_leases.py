"""trust on a real stack: per-schedule catch-up window, claim leases

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # seconds a slot may be late and still count as on time (was a hidden 60 s)
    op.add_column("schedule", sa.Column("catchup_window", sa.Integer(), nullable=False,
                                        server_default="60"))
    # a claimed run belongs to its timer until this instant; then another may take it
    op.add_column("schedule_run", sa.Column("lease_until", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("schedule_run") as batch:
        batch.drop_column("lease_until")
    with op.batch_alter_table("schedule") as batch:
        batch.drop_column("catchup_window")
