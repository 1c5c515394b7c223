"""Exams: create, change, find."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from proctoring import vendor_calls
from proctoring.errors import Conflict, NotFound
from proctoring.models import Exam
from proctoring.people import ensure_course
from proctoring.providers import provider_for_new_exam

CHANGEABLE_FIELDS = frozenset(
    {
        "exam_name",
        "time_limit_mins",
        "due_date",
        "external_id",
        "is_proctored",
        "is_practice_exam",
        "is_active",
        "provider",
    }
)


def create_exam(
    session: Session,
    *,
    course_id: str,
    content_id: str,
    exam_name: str,
    time_limit_mins: int,
    due_date: dt.datetime | None = None,
    external_id: str | None = None,
    is_proctored: bool = True,
    is_practice_exam: bool = False,
    is_active: bool = True,
    provider: str | None = None,
) -> Exam:
    ensure_course(session, course_id)
    exam = Exam(
        course_id=course_id,
        content_id=content_id,
        exam_name=exam_name,
        time_limit_mins=time_limit_mins,
        due_date=_utc(due_date),
        external_id=external_id,
        is_proctored=is_proctored,
        is_practice_exam=is_practice_exam,
        is_active=is_active,
        provider=provider_for_new_exam(provider),
    )
    try:
        with session.begin_nested():
            session.add(exam)
    except IntegrityError:
        raise Conflict(
            f"an exam with content_id {content_id!r} already exists in course {course_id!r}"
        ) from None
    vendor_calls.exam_changed(session, exam, was_proctored=False)
    return exam


def update_exam(session: Session, exam_id: int, changes: dict[str, Any]) -> Exam:
    """Change only the given fields."""
    unknown = set(changes) - CHANGEABLE_FIELDS
    if unknown:
        raise ValueError(f"fields that cannot be changed: {sorted(unknown)}")
    exam = get_exam(session, exam_id)
    if "provider" in changes and changes["provider"] is not None:
        changes = {**changes, "provider": provider_for_new_exam(changes["provider"])}
    if "due_date" in changes:
        changes = {**changes, "due_date": _utc(changes["due_date"])}
    was_proctored = exam.is_proctored
    for field, value in changes.items():
        setattr(exam, field, value)
    session.flush()
    vendor_calls.exam_changed(session, exam, was_proctored=was_proctored)
    return exam


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    return None if moment is None else moment.astimezone(dt.UTC)


def get_exam(session: Session, exam_id: int) -> Exam:
    exam = session.get(Exam, exam_id)
    if exam is None:
        raise NotFound(f"exam {exam_id} does not exist")
    return exam


def get_exam_by_content(session: Session, course_id: str, content_id: str) -> Exam:
    exam = session.scalar(
        select(Exam).where(Exam.course_id == course_id, Exam.content_id == content_id)
    )
    if exam is None:
        raise NotFound(f"course {course_id!r} has no exam with content_id {content_id!r}")
    return exam


def list_course_exams(
    session: Session, course_id: str, *, active_only: bool = False
) -> Sequence[Exam]:
    query = select(Exam).where(Exam.course_id == course_id).order_by(Exam.id)
    if active_only:
        query = query.where(Exam.is_active.is_(True))
    return session.scalars(query).all()


def list_practice_exams(session: Session, course_id: str) -> Sequence[Exam]:
    """Active practice proctored exams of the course."""
    return session.scalars(
        select(Exam)
        .where(
            Exam.course_id == course_id,
            Exam.is_active.is_(True),
            Exam.is_practice_exam.is_(True),
            Exam.is_proctored.is_(True),
        )
        .order_by(Exam.id)
    ).all()


def cascade_targets(session: Session, course_id: str, except_exam_id: int) -> Sequence[int]:
    """Ids of the exams a decline spreads to: the course's other active, proctored, real ones."""
    return session.scalars(
        select(Exam.id)
        .where(
            Exam.course_id == course_id,
            Exam.id != except_exam_id,
            Exam.is_active.is_(True),
            Exam.is_proctored.is_(True),
            Exam.is_practice_exam.is_(False),
        )
        .order_by(Exam.id)
    ).all()
