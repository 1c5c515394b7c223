"""Events for the LMS: an outbox row names the receiver it is for.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = "state = 'pending'"


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("receiver", sa.String(length=100), nullable=True))
        batch_op.create_index(
            "ix_outbox_pending_events",
            ["receiver", "attempt_id", "id"],
            unique=False,
            sqlite_where=sa.text(PENDING),
            postgresql_where=sa.text(PENDING),
        )


def downgrade() -> None:
    # The older code cannot read a row of kind 'event': they go with the feature.
    op.execute("DELETE FROM outbox WHERE kind = 'event'")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_pending_events",
            sqlite_where=sa.text(PENDING),
            postgresql_where=sa.text(PENDING),
        )
        batch_op.drop_column("receiver")
