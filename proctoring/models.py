"""The tables. The uniqueness rules of docs/behaviour.md ("Entities") live here as database
constraints."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from proctoring.clock import utcnow
from proctoring.statuses import CreditStatus, Source, Status

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Longer idempotency keys are stored as digests (proctoring.transitions.review_key).
KEY_LENGTH = 255

# Ids grow without bound on the busy tables; SQLite only autoincrements INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use proctoring.clock.utcnow()")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        length=32,
        create_constraint=False,
        values_callable=lambda members: [m.value for m in members],
    )


class TransitionState(enum.StrEnum):
    pending = "pending"
    applied = "applied"
    noop = "noop"
    rejected = "rejected"
    failed = "failed"


# The states a request ends in. Only an operator's replay moves one back (a failed one).
FINAL_TRANSITION_STATES = tuple(s for s in TransitionState if s is not TransitionState.pending)


class ReviewState(enum.StrEnum):
    applied = "applied"  # a transition to the outcome was recorded
    held = "held"  # waits for the attempt to be submitted
    stored = "stored"  # kept, never applied (declined, not proctored, archived)


class OutboxKind(enum.StrEnum):
    credit = "credit"
    clear_credit = "clear_credit"
    cascade = "cascade"
    email = "email"
    event = "event"
    vendor = "vendor"


class OutboxState(enum.StrEnum):
    pending = "pending"
    done = "done"
    failed = "failed"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime()}


# Partial indexes: a unique rule among live attempts only; the sweeper's and the relay's scans
# over pending rows only, so those indexes stay as small as the backlog.
_LIVE = "archived_at IS NULL"
_PENDING = "state = 'pending'"


def _partial_index(name: str, *columns: str, where: str, unique: bool = False) -> Index:
    condition = text(where)
    return Index(name, *columns, unique=unique, sqlite_where=condition, postgresql_where=condition)


class Timestamped:
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class User(Timestamped, Base):
    __tablename__ = "users"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    username: Mapped[str] = mapped_column(String(150))
    email: Mapped[str] = mapped_column(String(254))
    is_staff: Mapped[bool] = mapped_column(Boolean, default=False)


class Course(Timestamped, Base):
    __tablename__ = "courses"

    course_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    contact_url: Mapped[str | None] = mapped_column(String(500))


class CourseStaff(Base):
    __tablename__ = "course_staff"

    course_id: Mapped[str] = mapped_column(ForeignKey("courses.course_id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Exam(Timestamped, Base):
    __tablename__ = "exams"
    __table_args__ = (UniqueConstraint("course_id", "content_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[str] = mapped_column(ForeignKey("courses.course_id"), index=True)
    content_id: Mapped[str] = mapped_column(String(255))
    exam_name: Mapped[str] = mapped_column(Text)
    time_limit_mins: Mapped[int] = mapped_column(Integer)
    due_date: Mapped[dt.datetime | None]
    external_id: Mapped[str | None] = mapped_column(String(255))
    is_proctored: Mapped[bool] = mapped_column(Boolean, default=True)
    is_practice_exam: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    provider: Mapped[str | None] = mapped_column(String(100))


class Attempt(Timestamped, Base):
    __tablename__ = "attempts"
    __table_args__ = (
        # One live attempt per (exam, user); archived attempts are kept beside it.
        _partial_index(
            "uq_attempts_live_exam_user", "exam_id", "user_id", unique=True, where=_LIVE
        ),
        Index("ix_attempts_status_started_at", "status", "started_at"),
        # A vendor's session id names one live attempt of that vendor: a vendor's lookup
        # never has to choose, and nobody can take over another learner's session.
        _partial_index(
            "uq_attempts_live_provider_external_id",
            "provider",
            "external_id",
            unique=True,
            where=_LIVE,
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    exam_id: Mapped[int] = mapped_column(ForeignKey("exams.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.user_id"), index=True)
    status: Mapped[Status] = mapped_column(_enum(Status, "attempt_status"))
    attempt_code: Mapped[str] = mapped_column(String(64), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(255), index=True)
    # The vendor whose session ``external_id`` is: the exam's provider when the attempt was
    # made. A session stays with the vendor that issued it if the exam changes vendor.
    provider: Mapped[str | None] = mapped_column(String(100))
    taking_as_proctored: Mapped[bool] = mapped_column(Boolean)
    is_sample_attempt: Mapped[bool] = mapped_column(Boolean)
    started_at: Mapped[dt.datetime | None]
    completed_at: Mapped[dt.datetime | None]
    allowed_time_limit_mins: Mapped[int | None] = mapped_column(Integer)
    archived_at: Mapped[dt.datetime | None]


class Transition(Base):
    """A request to move an attempt: the inbox. Never deleted."""

    __tablename__ = "transitions"
    __table_args__ = (
        UniqueConstraint("source", "idempotency_key"),
        Index("ix_transitions_attempt_id_id", "attempt_id", "id"),
        _partial_index("ix_transitions_pending", "received_at", where=_PENDING),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Null only for a cascade to an exam the learner never attempted: the attempt is made
    # when the request is applied, and the column filled in then.
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("attempts.id"))
    exam_id: Mapped[int] = mapped_column(ForeignKey("exams.id"))
    user_id: Mapped[int] = mapped_column(BigInteger)
    to_status: Mapped[Status] = mapped_column(_enum(Status, "transition_to_status"))
    source: Mapped[Source] = mapped_column(_enum(Source, "transition_source"))
    actor_user_id: Mapped[int | None] = mapped_column(BigInteger)
    idempotency_key: Mapped[str] = mapped_column(String(KEY_LENGTH))
    state: Mapped[TransitionState] = mapped_column(
        _enum(TransitionState, "transition_state"), default=TransitionState.pending
    )
    from_status: Mapped[Status | None] = mapped_column(_enum(Status, "transition_from_status"))
    result_status: Mapped[Status | None] = mapped_column(_enum(Status, "transition_result_status"))
    detail: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    applied_at: Mapped[dt.datetime | None]
    # A time-out stamped with the instant the time ran out (docs/behaviour.md, "Time-outs").
    expired_at: Mapped[dt.datetime | None]
    # Bookkeeping of the pipeline: how often a worker began applying this request, and
    # when the sweeper last published it again.
    deliveries: Mapped[int] = mapped_column(Integer, default=0)
    last_published_at: Mapped[dt.datetime | None]


class AttemptHistory(Base):
    __tablename__ = "attempt_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id"), index=True)
    from_status: Mapped[Status] = mapped_column(_enum(Status, "history_from_status"))
    to_status: Mapped[Status] = mapped_column(_enum(Status, "history_to_status"))
    transition_id: Mapped[int] = mapped_column(ForeignKey("transitions.id"), unique=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Review(Base):
    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("provider", "webhook_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id"), index=True)
    provider: Mapped[str] = mapped_column(String(100))
    webhook_id: Mapped[str] = mapped_column(String(255))
    review_status: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[Status] = mapped_column(_enum(Status, "review_outcome"))
    reviewed_by: Mapped[str | None] = mapped_column(String(255))
    comments: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    state: Mapped[ReviewState] = mapped_column(_enum(ReviewState, "review_state"))
    transition_id: Mapped[int | None] = mapped_column(ForeignKey("transitions.id"))
    # What the vendor was first told (a held review is applied later): a repeated delivery
    # of the same webhook gets the same answer again.
    answered_state: Mapped[ReviewState] = mapped_column(_enum(ReviewState, "review_answered"))

    @property
    def applied(self) -> bool:
        return self.state is ReviewState.applied


class VendorMessage(Base):
    """Every webhook id a vendor has used, whatever the message was (a ready notice or a
    review): one id names one message, and the unique key settles two sent at once."""

    __tablename__ = "vendor_messages"
    __table_args__ = (UniqueConstraint("provider", "webhook_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider: Mapped[str] = mapped_column(String(100))
    webhook_id: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CreditRequirement(Timestamped, Base):
    __tablename__ = "credit_requirements"
    __table_args__ = (UniqueConstraint("user_id", "course_id", "namespace", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    course_id: Mapped[str] = mapped_column(String(255))
    namespace: Mapped[str] = mapped_column(String(64), default="proctored_exam")
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[CreditStatus] = mapped_column(_enum(CreditStatus, "credit_status"))
    transition_id: Mapped[int] = mapped_column(ForeignKey("transitions.id"))


class SentEmail(Base):
    """One e-mail per applied transition at most: the row is claimed before sending."""

    __tablename__ = "sent_emails"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id"), index=True)
    transition_id: Mapped[int] = mapped_column(ForeignKey("transitions.id"), unique=True)
    template: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(254))
    claimed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]


class Outbox(Base):
    """A follow-up recorded in the same commit as the status change that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (
        _partial_index("ix_outbox_pending", "created_at", where=_PENDING),
        # An event waits for the earlier pending events of its (receiver, attempt).
        _partial_index("ix_outbox_pending_events", "receiver", "attempt_id", "id", where=_PENDING),
        # A vendor's registration of an attempt waits for the pending ones of its exam.
        _partial_index("ix_outbox_pending_exams", "exam_id", "id", where=_PENDING),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[OutboxKind] = mapped_column(_enum(OutboxKind, "outbox_kind"))
    # The event receiver (PROCTORQ_EVENT_WEBHOOKS) an event row is for, or the provider a
    # vendor call is for; None for other kinds.
    receiver: Mapped[str | None] = mapped_column(String(100))
    # Null only on a vendor call about an exam (its registration), which names the exam
    # instead; typed as every other kind has it, the vendor's code alone reads such a row.
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id"), index=True, nullable=True)
    exam_id: Mapped[int | None] = mapped_column(ForeignKey("exams.id"))
    transition_id: Mapped[int | None] = mapped_column(ForeignKey("transitions.id"), index=True)
    state: Mapped[OutboxState] = mapped_column(
        _enum(OutboxState, "outbox_state"), default=OutboxState.pending
    )
    detail: Mapped[str | None] = mapped_column(Text)
    # Deliveries begun since the row's last recorded outcome: only work that keeps killing
    # its worker (and so never records one) makes this grow.
    deliveries: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    done_at: Mapped[dt.datetime | None]
    last_published_at: Mapped[dt.datetime | None]
    # Retried by time (docs/behaviour.md, "Retries and failure"): nothing delivers the row
    # before its next try; it ends `failed` once it has been failing for longer than the budget.
    next_try_at: Mapped[dt.datetime | None]
    retrying_since: Mapped[dt.datetime | None]
    tries: Mapped[int] = mapped_column(Integer, default=0)
    # What the row delivers once its local work is done (JSON), so a retry sends the same.
    payload: Mapped[str | None] = mapped_column(Text)


__all__ = [
    "FINAL_TRANSITION_STATES",
    "Attempt",
    "AttemptHistory",
    "Base",
    "Course",
    "CourseStaff",
    "CreditRequirement",
    "Exam",
    "Outbox",
    "OutboxKind",
    "OutboxState",
    "Review",
    "ReviewState",
    "SentEmail",
    "Source",
    "Transition",
    "TransitionState",
    "User",
    "VendorMessage",
]
