"""Add operator sign-in: TOTP state on operators and operator sessions

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("support_operator", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("drift", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("failures", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("locked_until", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("confirmed_at", sa.Integer(), nullable=True))

    op.create_table(
        "operator_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False
        ),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=False),
        sa.Column("ended_at", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["operator_id"], ["support_operator.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("operator_session", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_operator_session_operator_id"), ["operator_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("operator_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_operator_session_operator_id"))
    op.drop_table("operator_session")
    with op.batch_alter_table("support_operator", schema=None) as batch_op:
        batch_op.drop_column("confirmed_at")
        batch_op.drop_column("locked_until")
        batch_op.drop_column("failures")
        batch_op.drop_column("drift")
