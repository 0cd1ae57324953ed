"""The audit log: whether a share's reads are recorded too

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # not in batch mode (see 0007): copying the shares table would cascade to its grants
    op.add_column(
        "shares", sa.Column("audit_reads", sa.Boolean(), nullable=False, server_default="0")
    )


def downgrade() -> None:
    op.drop_column("shares", "audit_reads")
