"""One vendor session, one live attempt; one webhook id, one vendor message.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "archived_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider", sa.String(length=100), nullable=True))
    # An attempt's vendor is its exam's, as the vendor lookup took it until now.
    op.execute(
        "UPDATE attempts SET provider = "
        "(SELECT exams.provider FROM exams WHERE exams.id = attempts.exam_id)"
    )
    # A session id held by several live attempts of one vendor stays with the first holder:
    # a later one could only have been set by someone who knew it already.
    op.execute(
        "UPDATE attempts SET external_id = NULL "
        "WHERE archived_at IS NULL AND external_id IS NOT NULL AND EXISTS ("
        "SELECT 1 FROM attempts AS holder WHERE holder.provider = attempts.provider "
        "AND holder.external_id = attempts.external_id AND holder.archived_at IS NULL "
        "AND holder.id < attempts.id)"
    )
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.create_index(
            "uq_attempts_live_provider_external_id",
            ["provider", "external_id"],
            unique=True,
            sqlite_where=sa.text(LIVE),
            postgresql_where=sa.text(LIVE),
        )

    op.create_table(
        "vendor_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("provider", sa.String(length=100), nullable=False),
        sa.Column("webhook_id", sa.String(length=255), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vendor_messages")),
        sa.UniqueConstraint(
            "provider", "webhook_id", name=op.f("uq_vendor_messages_provider_webhook_id")
        ),
    )
    # A held review whose webhook id a ready notice had already used was a second message with
    # that id: it changes nothing, and releasing it would collide with the notice's request.
    op.execute(
        "UPDATE reviews SET state = 'stored' WHERE state = 'held' AND EXISTS ("
        "SELECT 1 FROM transitions WHERE transitions.source = 'vendor' "
        "AND transitions.idempotency_key = reviews.provider || ':' || reviews.webhook_id)"
    )


def downgrade() -> None:
    op.drop_table("vendor_messages")
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_attempts_live_provider_external_id",
            sqlite_where=sa.text(LIVE),
            postgresql_where=sa.text(LIVE),
        )
        batch_op.drop_column("provider")
