"""Setting up courses, exams and learners through the domain, for pipeline tests."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select

from proctoring import attempts, exams, people, transitions
from proctoring.models import AttemptHistory, Transition, TransitionState
from proctoring.statuses import Source, Status
from tests.support.processes import Stack, wait_until

_numbers = itertools.count(1)


@dataclass(frozen=True)
class Seat:
    """A learner's attempt at an exam."""

    attempt_id: int
    exam_id: int
    user_id: int


def course(
    stack: Stack, exams_count: int = 1, learners: int = 1, **exam_fields: object
) -> tuple[str, list[int], list[Seat]]:
    """A course with exams and learners who each have an attempt at the first exam."""
    n = next(_numbers)
    course_id = f"course-v1:proctorq+Run{n}+2026"
    with stack.uow() as session:
        people.put_course(session, course_id, name=f"Course {n}", contact_url=None)
        exam_ids = [
            exams.create_exam(
                session,
                course_id=course_id,
                content_id=f"block-v1:exam{n}-{i}",
                exam_name=f"Exam {i}",
                time_limit_mins=60,
                **exam_fields,  # type: ignore[arg-type]
            ).id
            for i in range(exams_count)
        ]
        seats = []
        for j in range(learners):
            user_id = 1_000_000 * n + j
            people.upsert_user(session, user_id, f"learner{user_id}", f"l{user_id}@example.test")
            attempt = attempts.create_attempt(
                session,
                exam_id=exam_ids[0],
                user_id=user_id,
                taking_as_proctored=True,
                external_id=f"ext-{user_id}",
            )
            seats.append(Seat(attempt.id, exam_ids[0], user_id))
    return course_id, exam_ids, seats


def record(
    stack: Stack, seat: Seat, to: str, source: str = "learner", key: str | None = None
) -> int:
    """Record a request the way the API does: commit, then publish."""
    with stack.uow() as session:
        transition, _ = transitions.record_transition(
            session,
            attempt_id=seat.attempt_id,
            to_status=Status(to),
            source=Source(source),
            idempotency_key=key or f"k-{next(_numbers)}",
            actor_user_id=seat.user_id,
        )
        return transition.id


def final(stack: Stack, ids: Sequence[int]) -> bool:
    with stack.uow() as session:
        pending = session.scalar(
            select(func.count())
            .select_from(Transition)
            .where(Transition.id.in_(ids), Transition.state == TransitionState.pending)
        )
    return pending == 0


def wait_final(stack: Stack, ids: Sequence[int], timeout: float = 90) -> None:
    wait_until(lambda: final(stack, ids), timeout=timeout, what=f"{len(ids)} requests to end")


def nothing_pending(stack: Stack) -> bool:
    from proctoring.models import Outbox, OutboxState

    with stack.uow() as session:
        return not (
            session.scalar(
                select(func.count())
                .select_from(Transition)
                .where(Transition.state == TransitionState.pending)
            )
            or session.scalar(
                select(func.count()).select_from(Outbox).where(Outbox.state == OutboxState.pending)
            )
        )


def history_count(stack: Stack, attempt_id: int) -> int:
    with stack.uow() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(AttemptHistory)
                .where(AttemptHistory.attempt_id == attempt_id)
            )
            or 0
        )
