"""SPEC §3 step 8: the cascade of declines to the learner's other exams of the course."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from proctoring import apply, attempts, cascade
from proctoring.db import pending_wakeups
from proctoring.models import Outbox, OutboxKind, OutboxState, Transition, TransitionState
from proctoring.statuses import Source, Status
from tests.support import factories as f

COURSE = "course-v1:proctorq+Cascade+2026"


def run_cascade_of(session: Session, transition: Transition) -> list[Transition]:
    """Do what the cascade task and the apply tasks do, in order."""
    rows = session.scalars(
        select(Outbox).where(
            Outbox.transition_id == transition.id, Outbox.kind == OutboxKind.cascade
        )
    ).all()
    cascade.run_cascades(session, [row.id for row in rows])
    created = session.scalars(
        select(Transition)
        .where(
            Transition.source == Source.cascade,
            Transition.idempotency_key.like(f"cascade:{transition.id}:%"),
        )
        .order_by(Transition.id)
    ).all()
    apply.apply_transitions(session, [t.id for t in created])
    session.flush()
    return list(created)


def test_a_decline_cascades_to_real_proctored_active_exams_only(session: Session) -> None:
    learner = f.user(session)
    first = f.exam(session, COURSE)
    other = f.exam(session, COURSE)
    another = f.exam(session, COURSE)
    f.exam(session, COURSE, is_practice_exam=True)
    f.exam(session, COURSE, is_proctored=False)  # a timed exam
    f.exam(session, COURSE, is_active=False)
    f.exam(session, "course-v1:proctorq+Elsewhere+2026")
    attempt = f.attempt(session, first, learner)
    decline = f.move(session, attempt, "declined", "learner")

    created = run_cascade_of(session, decline)

    assert sorted(t.exam_id for t in created) == sorted([other.id, another.id])
    for exam in (other, another):
        made = attempts.live_attempt(session, exam.id, learner.user_id)
        assert made is not None
        assert made.status is Status.declined
        assert made.taking_as_proctored is False
    assert all(t.state is TransitionState.applied for t in created)
    assert all(t.source is Source.cascade for t in created)


def test_a_cascade_is_recorded_once_however_often_it_runs(session: Session) -> None:
    learner = f.user(session)
    first, other = f.exam(session, COURSE), f.exam(session, COURSE)
    decline = f.move(session, f.attempt(session, first, learner), "declined", "learner")
    row = session.scalars(select(Outbox).where(Outbox.transition_id == decline.id)).all()
    ids = [r.id for r in row if r.kind is OutboxKind.cascade]
    first_run = cascade.record_cascade(session, decline.id, first, learner.user_id)
    again = cascade.record_cascade(session, decline.id, first, learner.user_id)
    assert len(first_run) == 1
    assert again == []
    result = cascade.run_cascades(session, ids)
    assert result.done == ids
    assert cascade.run_cascades(session, ids).done == []  # the row is done
    assert session.get_one(Outbox, ids[0]).state is OutboxState.done
    assert other.id in {t.exam_id for t in session.scalars(select(Transition))}


def test_a_cascade_leaves_completed_attempts_alone(session: Session) -> None:
    learner = f.user(session)
    first, other = f.exam(session, COURSE), f.exam(session, COURSE)
    done = f.attempt(session, other, learner)
    f.move(session, done, "started")
    f.move(session, done, "submitted")
    decline = f.move(session, f.attempt(session, first, learner), "declined", "learner")
    (cascaded,) = run_cascade_of(session, decline)
    assert cascaded.state is TransitionState.noop
    assert "a cascade leaves it" in (cascaded.detail or "")
    session.refresh(done)
    assert done.status is Status.submitted


def test_a_cascade_declines_an_attempt_in_progress_and_keeps_its_proctoring(
    session: Session,
) -> None:
    learner = f.user(session)
    first, other = f.exam(session, COURSE), f.exam(session, COURSE)
    running = f.attempt(session, other, learner, external_id="vendor-77")
    f.move(session, running, "started", "learner")
    decline = f.move(session, f.attempt(session, first, learner), "declined", "learner")
    (cascaded,) = run_cascade_of(session, decline)
    session.refresh(running)
    assert (cascaded.state, running.status) == (TransitionState.applied, Status.declined)
    assert running.taking_as_proctored is True
    assert running.external_id == "vendor-77"


def test_cascades_never_cascade_further(session: Session) -> None:
    learner = f.user(session)
    first, _other = f.exam(session, COURSE), f.exam(session, COURSE)
    decline = f.move(session, f.attempt(session, first, learner), "declined", "learner")
    (cascaded,) = run_cascade_of(session, decline)
    kinds = session.scalars(select(Outbox.kind).where(Outbox.transition_id == cascaded.id)).all()
    assert kinds == [OutboxKind.credit]


def test_a_rejection_cascades_declines(session: Session) -> None:
    learner = f.user(session)
    first, other = f.exam(session, COURSE), f.exam(session, COURSE)
    attempt = f.attempt(session, first, learner)
    for step in ("started", "submitted"):
        f.move(session, attempt, step)
    rejection = f.move(session, attempt, "rejected", "vendor")
    (cascaded,) = run_cascade_of(session, rejection)
    assert cascaded.exam_id == other.id
    assert cascaded.result_status is Status.declined
    assert attempt.taking_as_proctored is True


def test_the_cascade_wakes_an_apply_for_each_new_request(session: Session) -> None:
    learner = f.user(session)
    first = f.exam(session, COURSE)
    others = [f.exam(session, COURSE) for _ in range(3)]
    decline = f.move(session, f.attempt(session, first, learner), "declined", "learner")
    session.info.pop("wakeups", None)
    created = run_cascade_of(session, decline)
    woken = {w.id for w in pending_wakeups(session) if w.kind == "apply"}
    assert {t.id for t in created} <= woken
    assert len(created) == len(others)
