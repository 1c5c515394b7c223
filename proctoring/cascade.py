"""The cascade: declining one exam declines the learner's other proctored exams in the course."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from proctoring.clock import utcnow
from proctoring.db import upsert_insert, wake
from proctoring.exams import cascade_targets
from proctoring.ledger import APPLY
from proctoring.models import (
    Attempt,
    Exam,
    OutboxKind,
    OutboxState,
    Transition,
    TransitionState,
)
from proctoring.outbox import FollowUpResult, claim, finish
from proctoring.statuses import Source, Status


def cascade_key(transition_id: int, exam_id: int) -> str:
    """Deterministic, so a repeated cascade records each decline once."""
    return f"cascade:{transition_id}:{exam_id}"


def run_cascades(session: Session, outbox_ids: Sequence[int]) -> FollowUpResult:
    """Record a `declined` request from source `cascade` for each other exam of the course."""
    result = FollowUpResult()
    for row in claim(session, OutboxKind.cascade, outbox_ids):
        assert row.transition_id is not None
        attempt = session.get_one(Attempt, row.attempt_id)
        exam = session.get_one(Exam, attempt.exam_id)
        new_ids = record_cascade(session, row.transition_id, exam, attempt.user_id)
        wake(session, APPLY, new_ids)
        finish(row, OutboxState.done)
        result.done.append(row.id)
    return result


def record_cascade(session: Session, transition_id: int, exam: Exam, user_id: int) -> list[int]:
    """Insert the cascade requests in one statement per chunk; returns the new ids."""
    targets = cascade_targets(session, exam.course_id, exam.id)
    if not targets:
        return []
    live = dict(
        session.execute(
            select(Attempt.exam_id, Attempt.id).where(
                Attempt.user_id == user_id,
                Attempt.exam_id.in_(targets),
                Attempt.archived_at.is_(None),
            )
        ).all()
    )
    now = utcnow()
    rows: list[dict[str, Any]] = [
        {
            "attempt_id": live.get(target),
            "exam_id": target,
            "user_id": user_id,
            "to_status": Status.declined,
            "source": Source.cascade,
            "idempotency_key": cascade_key(transition_id, target),
            "state": TransitionState.pending,
            "received_at": now,
            "deliveries": 0,
        }
        # Attempts in id order: the foreign-key locks are then taken in the order appliers
        # take theirs, and the two never wait on each other in a circle.
        for target in sorted(targets, key=lambda t: (live.get(t) or 0, t))
    ]
    insert = upsert_insert(session)
    # Many rows, one compiled statement: SQLAlchemy sends them as multi-row INSERTs of up to
    # 1,000 rows ("insertmanyvalues"), and its statement cache holds one entry, not one per
    # row count.
    statement = (
        insert(Transition)
        .on_conflict_do_nothing(index_elements=["source", "idempotency_key"])
        .returning(Transition.id)
    )
    return sorted(session.scalars(statement, rows))
