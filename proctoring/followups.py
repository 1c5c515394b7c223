"""What follow-ups share: the facts of a batch of outbox rows, read once for the whole batch,
and the outbox calls they make, all reached through here so the outbox can change in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

from sqlalchemy import select
from sqlalchemy.orm import Session

from proctoring.models import Attempt, Course, Exam, Outbox, Transition, User
from proctoring.outbox import (
    FollowUpResult,
    RetryPolicy,
    claim,
    fail_outbox,
    finish,
    postpone,
    postpone_until,
    record_answers,
    release,
)
from proctoring.statuses import Status

__all__ = [
    "FollowUpContext",
    "FollowUpResult",
    "RetryPolicy",
    "claim",
    "fail_outbox",
    "finish",
    "postpone",
    "postpone_until",
    "record_answers",
    "release",
]


class FollowUpContext:
    """The attempts, exams, users and transition results of a batch, one query per table
    whatever its size. Courses are read only by whoever asks for them (e-mails name the
    course; credit does not)."""

    def __init__(self, session: Session, rows: Sequence[Outbox]) -> None:
        self._session = session
        self.attempts = {
            a.id: a
            for a in session.scalars(
                select(Attempt).where(Attempt.id.in_({r.attempt_id for r in rows}))
            )
        }
        self.exams = {
            e.id: e
            for e in session.scalars(
                select(Exam).where(Exam.id.in_({a.exam_id for a in self.attempts.values()}))
            )
        }
        self.users = {
            u.user_id: u
            for u in session.scalars(
                select(User).where(User.user_id.in_({a.user_id for a in self.attempts.values()}))
            )
        }
        transition_ids = {r.transition_id for r in rows if r.transition_id is not None}
        self.results: dict[int, Status | None] = dict(
            session.execute(
                select(Transition.id, Transition.result_status).where(
                    Transition.id.in_(transition_ids)
                )
            ).all()
        )

    @cached_property
    def courses(self) -> dict[str, Course]:
        wanted = {e.course_id for e in self.exams.values()}
        return {
            c.course_id: c
            for c in self._session.scalars(select(Course).where(Course.course_id.in_(wanted)))
        }

    def attempt(self, row: Outbox) -> Attempt:
        return self.attempts[row.attempt_id]

    def exam(self, row: Outbox) -> Exam:
        return self.exams[self.attempt(row).exam_id]

    def user(self, row: Outbox) -> User:
        return self.users[self.attempt(row).user_id]

    def course(self, row: Outbox) -> Course | None:
        """None for a course never named: its exams exist before anyone puts it."""
        return self.courses.get(self.exam(row).course_id)

    def result(self, row: Outbox) -> Status:
        """The status the row's transition came to: set on every row that follows one."""
        assert row.transition_id is not None
        status = self.results[row.transition_id]
        assert status is not None
        return status
