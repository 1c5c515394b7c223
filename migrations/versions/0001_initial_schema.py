"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 10:58:44.183546
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "courses",
        sa.Column("course_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("contact_url", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("course_id", name=op.f("pk_courses")),
    )
    op.create_table(
        "users",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("username", sa.String(length=150), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("is_staff", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_users")),
    )
    op.create_table(
        "course_staff",
        sa.Column("course_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.course_id"], name=op.f("fk_course_staff_course_id_courses")
        ),
        sa.PrimaryKeyConstraint("course_id", "user_id", name=op.f("pk_course_staff")),
    )
    op.create_table(
        "exams",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.String(length=255), nullable=False),
        sa.Column("content_id", sa.String(length=255), nullable=False),
        sa.Column("exam_name", sa.Text(), nullable=False),
        sa.Column("time_limit_mins", sa.Integer(), nullable=False),
        sa.Column("due_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("is_proctored", sa.Boolean(), nullable=False),
        sa.Column("is_practice_exam", sa.Boolean(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("provider", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.course_id"], name=op.f("fk_exams_course_id_courses")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exams")),
        sa.UniqueConstraint("course_id", "content_id", name=op.f("uq_exams_course_id_content_id")),
    )
    with op.batch_alter_table("exams", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exams_course_id"), ["course_id"], unique=False)

    op.create_table(
        "attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("exam_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "created",
                "download_software_clicked",
                "ready_to_start",
                "started",
                "ready_to_submit",
                "declined",
                "timed_out",
                "submitted",
                "second_review_required",
                "verified",
                "rejected",
                "error",
                name="attempt_status",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("attempt_code", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("taking_as_proctored", sa.Boolean(), nullable=False),
        sa.Column("is_sample_attempt", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("allowed_time_limit_mins", sa.Integer(), nullable=True),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["exam_id"], ["exams.id"], name=op.f("fk_attempts_exam_id_exams")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_attempts_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempts")),
        sa.UniqueConstraint("attempt_code", name=op.f("uq_attempts_attempt_code")),
    )
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attempts_external_id"), ["external_id"], unique=False)
        batch_op.create_index(
            "ix_attempts_status_started_at", ["status", "started_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_attempts_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            "uq_attempts_live_exam_user",
            ["exam_id", "user_id"],
            unique=True,
            sqlite_where=sa.text("archived_at IS NULL"),
            postgresql_where=sa.text("archived_at IS NULL"),
        )

    op.create_table(
        "transitions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "attempt_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("exam_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "to_status",
            sa.Enum(
                "created",
                "download_software_clicked",
                "ready_to_start",
                "started",
                "ready_to_submit",
                "declined",
                "timed_out",
                "submitted",
                "second_review_required",
                "verified",
                "rejected",
                "error",
                name="transition_to_status",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "source",
            sa.Enum(
                "learner",
                "staff",
                "vendor",
                "system",
                "cascade",
                name="transition_source",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("actor_user_id", sa.BigInteger(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "applied",
                "noop",
                "rejected",
                "failed",
                name="transition_state",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "from_status",
            sa.Enum(
                "created",
                "download_software_clicked",
                "ready_to_start",
                "started",
                "ready_to_submit",
                "declined",
                "timed_out",
                "submitted",
                "second_review_required",
                "verified",
                "rejected",
                "error",
                name="transition_from_status",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column(
            "result_status",
            sa.Enum(
                "created",
                "download_software_clicked",
                "ready_to_start",
                "started",
                "ready_to_submit",
                "declined",
                "timed_out",
                "submitted",
                "second_review_required",
                "verified",
                "rejected",
                "error",
                name="transition_result_status",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("last_published_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["attempt_id"], ["attempts.id"], name=op.f("fk_transitions_attempt_id_attempts")
        ),
        sa.ForeignKeyConstraint(
            ["exam_id"], ["exams.id"], name=op.f("fk_transitions_exam_id_exams")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transitions")),
        sa.UniqueConstraint(
            "source", "idempotency_key", name=op.f("uq_transitions_source_idempotency_key")
        ),
    )
    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.create_index("ix_transitions_attempt_id_id", ["attempt_id", "id"], unique=False)
        batch_op.create_index(
            "ix_transitions_pending",
            ["received_at"],
            unique=False,
            sqlite_where=sa.text("state = 'pending'"),
            postgresql_where=sa.text("state = 'pending'"),
        )

    op.create_table(
        "attempt_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "attempt_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "from_status",
            sa.Enum(
                "created",
                "download_software_clicked",
                "ready_to_start",
                "started",
                "ready_to_submit",
                "declined",
                "timed_out",
                "submitted",
                "second_review_required",
                "verified",
                "rejected",
                "error",
                name="history_from_status",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "to_status",
            sa.Enum(
                "created",
                "download_software_clicked",
                "ready_to_start",
                "started",
                "ready_to_submit",
                "declined",
                "timed_out",
                "submitted",
                "second_review_required",
                "verified",
                "rejected",
                "error",
                name="history_to_status",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "transition_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["attempt_id"], ["attempts.id"], name=op.f("fk_attempt_history_attempt_id_attempts")
        ),
        sa.ForeignKeyConstraint(
            ["transition_id"],
            ["transitions.id"],
            name=op.f("fk_attempt_history_transition_id_transitions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempt_history")),
        sa.UniqueConstraint("transition_id", name=op.f("uq_attempt_history_transition_id")),
    )
    with op.batch_alter_table("attempt_history", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_attempt_history_attempt_id"), ["attempt_id"], unique=False
        )

    op.create_table(
        "credit_requirements",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("course_id", sa.String(length=255), nullable=False),
        sa.Column("namespace", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "submitted",
                "satisfied",
                "failed",
                name="credit_status",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "transition_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["transition_id"],
            ["transitions.id"],
            name=op.f("fk_credit_requirements_transition_id_transitions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_requirements")),
        sa.UniqueConstraint(
            "user_id",
            "course_id",
            "namespace",
            "name",
            name=op.f("uq_credit_requirements_user_id_course_id_namespace_name"),
        ),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "credit",
                "clear_credit",
                "cascade",
                "email",
                name="outbox_kind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "attempt_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "transition_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "state",
            sa.Enum("pending", "done", "failed", name="outbox_state", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_published_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["attempt_id"], ["attempts.id"], name=op.f("fk_outbox_attempt_id_attempts")
        ),
        sa.ForeignKeyConstraint(
            ["transition_id"], ["transitions.id"], name=op.f("fk_outbox_transition_id_transitions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_attempt_id"), ["attempt_id"], unique=False)
        batch_op.create_index(
            "ix_outbox_pending",
            ["created_at"],
            unique=False,
            sqlite_where=sa.text("state = 'pending'"),
            postgresql_where=sa.text("state = 'pending'"),
        )
        batch_op.create_index(
            batch_op.f("ix_outbox_transition_id"), ["transition_id"], unique=False
        )

    op.create_table(
        "reviews",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "attempt_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("provider", sa.String(length=100), nullable=False),
        sa.Column("webhook_id", sa.String(length=255), nullable=False),
        sa.Column("review_status", sa.String(length=100), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum(
                "created",
                "download_software_clicked",
                "ready_to_start",
                "started",
                "ready_to_submit",
                "declined",
                "timed_out",
                "submitted",
                "second_review_required",
                "verified",
                "rejected",
                "error",
                name="review_outcome",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("reviewed_by", sa.String(length=255), nullable=True),
        sa.Column("comments", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "state",
            sa.Enum("applied", "held", "stored", name="review_state", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column(
            "transition_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["attempt_id"], ["attempts.id"], name=op.f("fk_reviews_attempt_id_attempts")
        ),
        sa.ForeignKeyConstraint(
            ["transition_id"], ["transitions.id"], name=op.f("fk_reviews_transition_id_transitions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
        sa.UniqueConstraint("provider", "webhook_id", name=op.f("uq_reviews_provider_webhook_id")),
    )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reviews_attempt_id"), ["attempt_id"], unique=False)

    op.create_table(
        "sent_emails",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "attempt_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "transition_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["attempt_id"], ["attempts.id"], name=op.f("fk_sent_emails_attempt_id_attempts")
        ),
        sa.ForeignKeyConstraint(
            ["transition_id"],
            ["transitions.id"],
            name=op.f("fk_sent_emails_transition_id_transitions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sent_emails")),
        sa.UniqueConstraint("transition_id", name=op.f("uq_sent_emails_transition_id")),
    )
    with op.batch_alter_table("sent_emails", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sent_emails_attempt_id"), ["attempt_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sent_emails", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sent_emails_attempt_id"))

    op.drop_table("sent_emails")
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reviews_attempt_id"))

    op.drop_table("reviews")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_transition_id"))
        batch_op.drop_index(
            "ix_outbox_pending",
            sqlite_where=sa.text("state = 'pending'"),
            postgresql_where=sa.text("state = 'pending'"),
        )
        batch_op.drop_index(batch_op.f("ix_outbox_attempt_id"))

    op.drop_table("outbox")
    op.drop_table("credit_requirements")
    with op.batch_alter_table("attempt_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attempt_history_attempt_id"))

    op.drop_table("attempt_history")
    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_transitions_pending",
            sqlite_where=sa.text("state = 'pending'"),
            postgresql_where=sa.text("state = 'pending'"),
        )
        batch_op.drop_index("ix_transitions_attempt_id_id")

    op.drop_table("transitions")
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_attempts_live_exam_user",
            sqlite_where=sa.text("archived_at IS NULL"),
            postgresql_where=sa.text("archived_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_attempts_user_id"))
        batch_op.drop_index("ix_attempts_status_started_at")
        batch_op.drop_index(batch_op.f("ix_attempts_external_id"))

    op.drop_table("attempts")
    with op.batch_alter_table("exams", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exams_course_id"))

    op.drop_table("exams")
    op.drop_table("course_staff")
    op.drop_table("users")
    op.drop_table("courses")
