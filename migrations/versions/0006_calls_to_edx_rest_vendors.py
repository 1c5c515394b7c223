"""Calls to vendors speaking edx-proctoring's REST protocol: an outbox row may be about an exam.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = "state = 'pending'"


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("exam_id", sa.Integer(), nullable=True))
        batch_op.alter_column("attempt_id", existing_type=sa.BigInteger(), nullable=True)
        batch_op.create_foreign_key("fk_outbox_exam_id_exams", "exams", ["exam_id"], ["id"])
        batch_op.create_index(
            "ix_outbox_pending_exams",
            ["exam_id", "id"],
            unique=False,
            sqlite_where=sa.text(PENDING),
            postgresql_where=sa.text(PENDING),
        )


def downgrade() -> None:
    # The older code cannot read a row of kind 'vendor': they go with the feature.
    op.execute("DELETE FROM outbox WHERE kind = 'vendor' OR attempt_id IS NULL")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_pending_exams",
            sqlite_where=sa.text(PENDING),
            postgresql_where=sa.text(PENDING),
        )
        batch_op.drop_constraint("fk_outbox_exam_id_exams", type_="foreignkey")
        batch_op.alter_column("attempt_id", existing_type=sa.BigInteger(), nullable=False)
        batch_op.drop_column("exam_id")
