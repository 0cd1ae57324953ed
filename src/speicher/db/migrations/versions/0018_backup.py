"""Offsite backup with restic: targets and tasks; the bytes and time left of a job

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backup_targets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("location", sa.String(length=2048), nullable=False),
        sa.Column("access_key", sa.String(length=255), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("ca_certificate", sa.Text(), nullable=False),
        sa.Column("host_key", sa.Text(), nullable=False),
        sa.Column("password_sealed", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "backup_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("share_id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("schedule", sa.String(length=64), nullable=False),
        sa.Column("keep_last", sa.Integer(), nullable=False),
        sa.Column("keep_daily", sa.Integer(), nullable=False),
        sa.Column("keep_weekly", sa.Integer(), nullable=False),
        sa.Column("keep_monthly", sa.Integer(), nullable=False),
        sa.Column("keep_yearly", sa.Integer(), nullable=False),
        sa.Column("check_days", sa.Float(), nullable=False),
        sa.Column("check_percent", sa.Float(), nullable=False),
        sa.Column("alert_after", sa.Integer(), nullable=False),
        sa.Column("alert_days", sa.Float(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_ok_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_snapshot", sa.String(length=64), nullable=False),
        sa.Column("last_files", sa.BigInteger(), nullable=False),
        sa.Column("last_bytes", sa.BigInteger(), nullable=False),
        sa.Column("last_added", sa.BigInteger(), nullable=False),
        sa.Column("last_seconds", sa.Float(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["share_id"], ["shares.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["target_id"], ["backup_targets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("share_id", "target_id"),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("bytes_done", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("bytes_total", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("eta_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("eta_seconds")
        batch.drop_column("bytes_total")
        batch.drop_column("bytes_done")
    op.drop_table("backup_tasks")
    op.drop_table("backup_targets")
