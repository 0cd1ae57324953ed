"""shares: when whole-file writes over ShareFS reach the disk (write_sync)

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("write_sync", sa.String(length=16), server_default="always", nullable=False)
        )


def downgrade() -> None:
    # in place, not in batch mode: see 0007
    op.drop_column("shares", "write_sync")
