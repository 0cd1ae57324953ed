"""webdav and sftp switches of shares; users' ssh keys

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("webdav_enabled", sa.Boolean(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("sftp_enabled", sa.Boolean(), server_default="0", nullable=False)
        )
    op.create_table(
        "ssh_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("algorithm", sa.String(length=64), nullable=False),
        sa.Column("comment", sa.String(length=256), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "fingerprint"),
    )


def downgrade() -> None:
    op.drop_table("ssh_keys")
    # Not in batch mode: on SQLite that copies the table and drops the old one, and with
    # foreign keys on, dropping it deletes the shares' grants, policies and snapshot locks
    # (ON DELETE CASCADE). SQLite drops a plain column in place (3.35 and later).
    op.drop_column("shares", "sftp_enabled")
    op.drop_column("shares", "webdav_enabled")
