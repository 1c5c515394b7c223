"""Time-outs (docs/behaviour.md, "Time-outs"): attempts in progress whose time has run out get
a `timed_out` request."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ColumnElement, func, literal, select
from sqlalchemy.orm import Session

from proctoring import statuses
from proctoring.clock import utcnow
from proctoring.models import Attempt, Transition, UTCDateTime
from proctoring.statuses import Source, Status
from proctoring.transitions import record_transition

IN_PROGRESS = [s for s in Status if statuses.is_in_progress(s)]


def expiry(attempt: Attempt) -> dt.datetime | None:
    if attempt.started_at is None or attempt.allowed_time_limit_mins is None:
        return None
    return attempt.started_at + dt.timedelta(minutes=attempt.allowed_time_limit_mins)


# The database's pick may be off by its arithmetic's rounding; `notice_expiry` decides exactly.
_SLACK = dt.timedelta(seconds=1)


def _time_up_by(session: Session, moment: dt.datetime) -> ColumnElement[bool]:
    """``expiry(attempt) <= moment``, in SQL: on SQLite, whose times are text, in Julian days."""
    at = literal(moment, UTCDateTime())
    if session.get_bind().dialect.name == "postgresql":
        minutes = func.make_interval(0, 0, 0, 0, 0, Attempt.allowed_time_limit_mins)
        return Attempt.started_at + minutes <= at
    days = Attempt.allowed_time_limit_mins / 1440.0
    return func.julianday(Attempt.started_at) + days <= func.julianday(at)


def timeout_key(attempt_id: int, expired_at: dt.datetime) -> str:
    """The same from the sweeper and from a read: both paths make one request."""
    return f"timed_out:{attempt_id}:{expired_at.astimezone(dt.UTC).isoformat()}"


def notice_expiry(
    session: Session, attempt: Attempt, now: dt.datetime | None = None
) -> Transition | None:
    """Record the time-out of this attempt if its time has run out; else nothing."""
    expired_at = expiry(attempt)
    if (
        attempt.archived_at is not None
        or not statuses.is_in_progress(attempt.status)
        or expired_at is None
        or expired_at > (now or utcnow())
    ):
        return None
    transition, _ = record_transition(
        session,
        attempt_id=attempt.id,
        to_status=Status.timed_out,
        source=Source.system,
        idempotency_key=timeout_key(attempt.id, expired_at),
        expired_at=expired_at,
    )
    return transition


def expire_overdue_attempts(session: Session, now: dt.datetime | None = None) -> list[int]:
    """Record a time-out for every attempt in progress whose time has passed.

    The database picks them (`_time_up_by`), so a sweep reads the few whose time is up, not
    every attempt in progress: loading those every five seconds held an applying worker's
    pool process for half a second with 10,000 in progress (docs/PERFORMANCE.md).
    """
    now = now or utcnow()
    candidates = session.scalars(
        select(Attempt)
        .where(
            Attempt.status.in_(IN_PROGRESS),
            Attempt.archived_at.is_(None),
            Attempt.started_at.is_not(None),
            Attempt.started_at <= now,
            Attempt.allowed_time_limit_mins.is_not(None),
            _time_up_by(session, now + _SLACK),
        )
        .order_by(Attempt.id)
    ).all()
    recorded = []
    for attempt in candidates:
        transition = notice_expiry(session, attempt, now)
        if transition is not None:
            recorded.append(transition.id)
    return recorded
