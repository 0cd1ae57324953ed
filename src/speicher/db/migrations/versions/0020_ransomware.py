"""Ransomware detection: the shares' policies and the incidents; read-only shares

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # not in batch mode (see 0007): copying the shares table would cascade to its grants
    op.add_column(
        "shares", sa.Column("read_only", sa.Boolean(), nullable=False, server_default="0")
    )
    op.create_table(
        "ransomware_policies",
        sa.Column("share_id", sa.Integer(), nullable=False),
        sa.Column("detect", sa.Boolean(), nullable=False),
        sa.Column("canary", sa.Boolean(), nullable=False),
        sa.Column("window", sa.Float(), nullable=False),
        sa.Column("renames", sa.Integer(), nullable=False),
        sa.Column("overwrites", sa.Integer(), nullable=False),
        sa.Column("deletes", sa.Integer(), nullable=False),
        sa.Column("disable_user", sa.Boolean(), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.Column("lock_days", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["share_id"], ["shares.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("share_id"),
    )
    op.create_table(
        "ransomware_incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("protocol", sa.String(length=16), nullable=False),
        sa.Column("share", sa.String(length=63), nullable=False),
        sa.Column("signal", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("paths", sa.Text(), nullable=False),
        sa.Column("changes", sa.Text(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("user_disabled", sa.Boolean(), nullable=False),
        sa.Column("snapshots", sa.Text(), nullable=False),
        sa.Column("read_only", sa.Text(), nullable=False),
        sa.Column("restored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("restore_result", sa.Text(), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("ransomware_incidents")
    op.drop_table("ransomware_policies")
    op.drop_column("shares", "read_only")
