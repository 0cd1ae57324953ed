"""Replication tasks: a share sent to a target on a schedule; a pairing's own retention

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replication_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("share_id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("schedule", sa.String(length=64), nullable=False),
        sa.Column("keep_last", sa.Integer(), nullable=False),
        sa.Column("rpo_hours", sa.Float(), nullable=False),
        sa.Column("alert_after", sa.Integer(), nullable=False),
        sa.Column("compress", sa.Boolean(), nullable=False),
        sa.Column("bandwidth_mib", sa.Float(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("snapshots", sa.Text(), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_ok_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_snapshot", sa.String(length=64), nullable=False),
        sa.Column("last_bytes", sa.BigInteger(), nullable=False),
        sa.Column("last_seconds", sa.Float(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["share_id"], ["shares.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["target_id"], ["replication_targets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("share_id", "target_id"),
    )

    op.add_column(
        "replication_pairings",
        sa.Column("keep_last", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    with op.batch_alter_table("replication_pairings") as batch:
        batch.drop_column("keep_last")
    op.drop_table("replication_tasks")
