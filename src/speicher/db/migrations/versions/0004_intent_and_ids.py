"""intent states, file access, device ids, ids never reused

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shares") as batch_op:
        batch_op.add_column(
            sa.Column("state", sa.String(length=16), server_default="ready", nullable=False)
        )
    with op.batch_alter_table("users") as batch_op:
        batch_op.alter_column("uid", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(
            sa.Column("file_access", sa.Boolean(), server_default="1", nullable=False)
        )
        batch_op.add_column(
            sa.Column("state", sa.String(length=16), server_default="ready", nullable=False)
        )
    with op.batch_alter_table("groups") as batch_op:
        batch_op.add_column(
            sa.Column("state", sa.String(length=16), server_default="ready", nullable=False)
        )
    with op.batch_alter_table("pool_disks") as batch_op:
        batch_op.add_column(sa.Column("devid", sa.Integer(), nullable=True))
    op.create_table(
        "unix_ids",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=3), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "number"),
    )
    # the ids in use now are handed out for good
    op.execute(
        "INSERT INTO unix_ids (kind, number, owner, created_at) "
        "SELECT 'uid', uid, name, created_at FROM users WHERE uid IS NOT NULL"
    )
    op.execute(
        "INSERT INTO unix_ids (kind, number, owner, created_at) "
        "SELECT 'gid', gid, name, created_at FROM groups"
    )


def downgrade() -> None:
    op.drop_table("unix_ids")
    with op.batch_alter_table("pool_disks") as batch_op:
        batch_op.drop_column("devid")
    with op.batch_alter_table("groups") as batch_op:
        batch_op.drop_column("state")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("state")
        batch_op.drop_column("file_access")
        batch_op.alter_column("uid", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("shares") as batch_op:
        batch_op.drop_column("state")
