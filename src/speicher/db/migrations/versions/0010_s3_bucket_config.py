"""S3 buckets' CORS rules and tags

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.add_column(sa.Column("s3_cors", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("s3_tags", sa.Text(), server_default="", nullable=False))


def downgrade() -> None:
    # in place, not in batch mode: see 0007
    op.drop_column("shares", "s3_tags")
    op.drop_column("shares", "s3_cors")
