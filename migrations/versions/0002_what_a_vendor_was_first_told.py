"""What a vendor was first told about a review, for repeated deliveries.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 13:48:26.146915
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATE = sa.Enum("applied", "held", "stored", name="review_answered", native_enum=False, length=32)


def upgrade() -> None:
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.add_column(sa.Column("answered_state", STATE, nullable=True))
    # Reviews recorded before: their state now is the best record of what was answered.
    op.execute("UPDATE reviews SET answered_state = state")
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.alter_column("answered_state", existing_type=STATE, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_column("answered_state")
