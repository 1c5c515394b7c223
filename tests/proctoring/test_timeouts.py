"""SPEC §6: overdue attempts get one time-out request, whichever path notices first."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import event
from sqlalchemy.orm import Session

from proctoring import apply, timeouts, transitions
from proctoring.clock import utcnow
from proctoring.models import Attempt
from proctoring.statuses import Source, Status
from tests.support import factories as f


def started(session: Session, seconds_ago: float) -> Attempt:
    """An attempt with an hour's limit, started this long ago."""
    attempt = f.attempt(session, f.exam(session, time_limit_mins=60))
    f.move(session, attempt, "started", "learner")
    attempt.started_at = utcnow() - dt.timedelta(seconds=seconds_ago)
    session.flush()
    return attempt


def overdue(session: Session, minutes_ago: int = 100) -> Attempt:
    return started(session, minutes_ago * 60)


def test_the_sweep_records_a_stamped_time_out(session: Session) -> None:
    attempt = overdue(session)
    (transition_id,) = timeouts.expire_overdue_attempts(session)
    transition = transitions.get_transition(session, transition_id)
    assert (transition.source, transition.to_status) == (Source.system, Status.timed_out)
    assert transition.expired_at == attempt.started_at + dt.timedelta(minutes=60)


def test_both_paths_make_one_request(session: Session) -> None:
    attempt = overdue(session)
    seen = timeouts.notice_expiry(session, attempt)
    assert seen is not None
    assert timeouts.expire_overdue_attempts(session) == [seen.id]
    assert timeouts.notice_expiry(session, attempt).id == seen.id  # type: ignore[union-attr]
    apply.apply_transitions(session, [seen.id])
    assert attempt.status is Status.submitted
    assert attempt.completed_at == seen.expired_at
    assert timeouts.expire_overdue_attempts(session) == []


def test_time_left_or_not_in_progress_is_left_alone(session: Session) -> None:
    fresh = overdue(session, minutes_ago=10)
    assert timeouts.notice_expiry(session, fresh) is None
    submitted = overdue(session)
    f.move(session, submitted, "submitted", "learner")
    assert timeouts.expire_overdue_attempts(session) == []


def test_the_database_picks_by_the_minute_and_second(session: Session) -> None:
    late = started(session, 3600 + 3)
    on_time = started(session, 3600 - 30)
    (transition_id,) = timeouts.expire_overdue_attempts(session)
    assert transitions.get_transition(session, transition_id).attempt_id == late.id
    assert on_time.status is Status.started


def test_the_sweep_reads_only_attempts_whose_time_is_up(session: Session) -> None:
    late = started(session, 3600 + 60)
    fresh = [started(session, 60).id for _ in range(3)]
    session.expunge_all()
    loaded: set[int] = set()

    @event.listens_for(session, "loaded_as_persistent")
    def seen(_: Session, instance: object) -> None:
        if isinstance(instance, Attempt):
            loaded.add(instance.id)

    timeouts.expire_overdue_attempts(session)
    assert late.id in loaded
    assert loaded.isdisjoint(fresh)
