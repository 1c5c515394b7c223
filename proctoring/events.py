"""Events for the LMS (docs/behaviour.md, "Events for the LMS"): what happened, recorded as
outbox rows in the commit that made it happen, one row per receiver that wants it.

The body is written once, when the event is recorded, so every try sends the same bytes; only
the signature and its time stamp are made afresh for each try (proctoring/receivers.py).
Bodies carry ids and statuses only: no e-mail address, no name.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from config import get_settings
from proctoring.clock import utcnow
from proctoring.db import wake
from proctoring.models import Attempt, Exam, Outbox, OutboxKind, Review, Transition
from proctoring.statuses import Status

STATUS_CHANGED = "attempt.status_changed"
CREDIT_CHANGED = "credit.changed"
REVIEW_RECEIVED = "review.received"


def receivers_of(event_type: str) -> list[str]:
    """The names of the receivers that asked for this type of event."""
    return [r.name for r in get_settings().event_webhooks if event_type in r.events]


def webhook_id(outbox_id: int) -> str:
    """The `webhook-id` of an event row: the same on every try of it."""
    return f"proctorq-event-{outbox_id}"


def exam_kind(exam: Exam) -> str:
    """The kind edx-proctoring names an exam by in its tracking events."""
    if not exam.is_proctored:
        return "timed"
    return "practice" if exam.is_practice_exam else "proctored"


def stamp(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def record(
    session: Session,
    event_type: str,
    attempt_id: int,
    data: Mapping[str, Any],
    *,
    transition_id: int | None = None,
    at: dt.datetime | None = None,
) -> list[Outbox]:
    """Add one event row per receiver of this type to the session (not flushed, not woken:
    see ``wake_events``). Nothing at all when no receiver wants it."""
    names = receivers_of(event_type)
    if not names:
        return []
    body = json.dumps(
        {"type": event_type, "timestamp": stamp(at or utcnow()), "data": dict(data)},
        separators=(",", ":"),
    )
    rows = [
        Outbox(
            kind=OutboxKind.event,
            receiver=name,
            attempt_id=attempt_id,
            transition_id=transition_id,
            payload=body,
        )
        for name in names
    ]
    session.add_all(rows)
    return rows


def wake_events(session: Session, rows: Sequence[Outbox]) -> None:
    """Give the rows their ids and ask for their delivery after the commit."""
    if rows:
        session.flush()
        wake(session, OutboxKind.event, [row.id for row in rows])


def status_changed(
    session: Session,
    attempt: Attempt,
    exam: Exam,
    transition: Transition,
    from_status: Status,
    to_status: Status,
    at: dt.datetime,
) -> list[Outbox]:
    kind = exam_kind(exam)
    return record(
        session,
        STATUS_CHANGED,
        attempt.id,
        {
            "attempt_id": attempt.id,
            "exam_id": exam.id,
            "course_id": exam.course_id,
            "content_id": exam.content_id,
            "user_id": attempt.user_id,
            "from_status": from_status.value,
            "to_status": to_status.value,
            "source": transition.source.value,
            "transition_id": transition.id,
            "at": stamp(at),
            "event_name": f"edx.special_exam.{kind}.attempt.{to_status.value}",
        },
        transition_id=transition.id,
        at=at,
    )


def credit_changed(
    session: Session, attempt_id: int, change: Mapping[str, Any], transition_id: int | None
) -> list[Outbox]:
    """``change`` is what the credit follow-up wrote; ``status`` None when it was cleared."""
    data = {"attempt_id": attempt_id}
    data.update(
        {
            key: change[key]
            for key in ("user_id", "course_id", "namespace", "name", "status", "transition_id")
        }
    )
    return record(session, CREDIT_CHANGED, attempt_id, data, transition_id=transition_id)


def review_received(session: Session, review: Review) -> list[Outbox]:
    return record(
        session,
        REVIEW_RECEIVED,
        review.attempt_id,
        {
            "attempt_id": review.attempt_id,
            "provider": review.provider,
            "review_status": review.review_status,
            "outcome": review.outcome.value,
            "state": review.state.value,
        },
        transition_id=review.transition_id,
        at=review.received_at,
    )
