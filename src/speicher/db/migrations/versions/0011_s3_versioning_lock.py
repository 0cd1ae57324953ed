"""S3 buckets' versioning state and Object Lock configuration

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("s3_versioning", sa.String(16), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("s3_object_lock", sa.Text(), server_default="", nullable=False)
        )


def downgrade() -> None:
    # in place, not in batch mode: see 0007
    op.drop_column("shares", "s3_object_lock")
    op.drop_column("shares", "s3_versioning")
