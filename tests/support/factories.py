"""Small builders for test data, through the domain's own functions, and readers of what the
domain wrote."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from proctoring import apply, attempts, exams, people, transitions
from proctoring.models import Attempt, AttemptHistory, Exam, Transition, User
from proctoring.statuses import Source, Status

_numbers = itertools.count(1)


def same_session(session: Session) -> Callable[[], contextlib.AbstractContextManager[Session]]:
    """A unit of work whose transactions all happen inside the test's own transaction."""
    return lambda: contextlib.nullcontext(session)


def user(session: Session, user_id: int | None = None, *, is_staff: bool = False) -> User:
    user_id = user_id or 10_000 + next(_numbers)
    return people.upsert_user(
        session, user_id, f"learner{user_id}", f"learner{user_id}@example.test", is_staff=is_staff
    )


def exam(
    session: Session,
    course_id: str = "course-v1:proctorq+T1+2026",
    *,
    provider: str | None = "acme",
    **fields: object,
) -> Exam:
    number = next(_numbers)
    values: dict[str, object] = {
        "content_id": f"block-v1:exam{number}",
        "exam_name": f"Midterm {number}",
        "time_limit_mins": 90,
        "provider": provider,
    }
    values.update(fields)
    return exams.create_exam(session, course_id=course_id, **values)  # type: ignore[arg-type]


def attempt(
    session: Session,
    exam_row: Exam | None = None,
    user_row: User | None = None,
    *,
    taking_as_proctored: bool = True,
    external_id: str | None = None,
) -> Attempt:
    exam_row = exam_row or exam(session)
    user_row = user_row or user(session)
    return attempts.create_attempt(
        session,
        exam_id=exam_row.id,
        user_id=user_row.user_id,
        taking_as_proctored=taking_as_proctored,
        external_id=external_id or f"ext-{next(_numbers)}",
    )


def request(
    session: Session,
    attempt_row: Attempt,
    to: str,
    source: str = "staff",
    *,
    key: str | None = None,
    actor_user_id: int | None = None,
) -> Transition:
    """Record a transition request (not yet applied)."""
    transition, _ = transitions.record_transition(
        session,
        attempt_id=attempt_row.id,
        to_status=Status(to),
        source=Source(source),
        idempotency_key=key or f"key-{next(_numbers)}",
        actor_user_id=actor_user_id,
    )
    return transition


def move(session: Session, attempt_row: Attempt, to: str, source: str = "staff") -> Transition:
    """Record a request and apply it at once, as a worker would."""
    transition = request(session, attempt_row, to, source)
    apply.apply_transitions(session, [transition.id])
    session.flush()
    session.refresh(attempt_row)
    return transition


def at(session: Session, attempt: Attempt, status: str) -> Attempt:
    """Bring an attempt to a status the way staff would, then forget its follow-ups."""
    path = {
        "created": [],
        "download_software_clicked": ["download_software_clicked"],
        "ready_to_start": ["ready_to_start"],
        "started": ["started"],
        "ready_to_submit": ["started", "ready_to_submit"],
        "submitted": ["started", "submitted"],
        "timed_out": ["timed_out"],
        "declined": ["declined"],
        "second_review_required": ["started", "submitted", "second_review_required"],
        "verified": ["started", "submitted", "verified"],
        "rejected": ["started", "submitted", "rejected"],
        "error": ["started", "error"],
    }[status]
    for step in path:
        move(session, attempt, step, "staff")
    assert attempt.status == status
    return attempt


def history(session: Session, attempt: Attempt) -> list[tuple[str, str]]:
    rows = session.scalars(
        select(AttemptHistory)
        .where(AttemptHistory.attempt_id == attempt.id)
        .order_by(AttemptHistory.id)
    )
    return [(row.from_status.value, row.to_status.value) for row in rows]
