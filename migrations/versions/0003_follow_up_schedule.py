"""Follow-ups retried by time: each row's next try, its failed tries, and what it delivers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 00:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("retrying_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("tries", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.add_column(sa.Column("payload", sa.Text(), nullable=True))
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column("tries", existing_type=sa.Integer(), server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("payload")
        batch_op.drop_column("tries")
        batch_op.drop_column("retrying_since")
        batch_op.drop_column("next_try_at")
