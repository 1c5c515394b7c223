"""SPEC §3 and §4, rule by rule, on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from proctoring import apply, transitions
from proctoring.clock import utcnow
from proctoring.db import pending_wakeups
from proctoring.errors import Conflict, NotFound
from proctoring.models import (
    Attempt,
    Outbox,
    TransitionState,
)
from proctoring.statuses import Source, Status
from tests.support import factories as f
from tests.support.factories import at, history


def refusal(frm: str, to: str, attempt: Attempt) -> str:
    return (
        f"A status transition from {frm} to {to} was attempted on exam_id {attempt.exam_id} "
        f"for user_id {attempt.user_id}. This is not allowed!"
    )


# --- step 1 and recording ---------------------------------------------------------------------


def test_recording_is_pending_until_applied(session: Session) -> None:
    attempt = f.attempt(session)
    transition = f.request(session, attempt, "started", "learner")
    assert transition.state is TransitionState.pending
    assert transition.received_at <= utcnow()
    assert ("apply", transition.id) in [(w.kind, w.id) for w in pending_wakeups(session)]


def test_same_key_returns_the_first_request(session: Session) -> None:
    attempt = f.attempt(session)
    first = f.request(session, attempt, "started", "learner", key="k")
    again, new = transitions.record_transition(
        session,
        attempt_id=attempt.id,
        to_status=Status.started,
        source=Source.learner,
        idempotency_key="k",
    )
    assert (again.id, new) == (first.id, False)


def test_same_key_with_another_body_is_a_conflict(session: Session) -> None:
    attempt = f.attempt(session)
    f.request(session, attempt, "started", "learner", key="k")
    with pytest.raises(Conflict):
        f.request(session, attempt, "submitted", "learner", key="k")


def test_keys_are_scoped_by_source(session: Session) -> None:
    attempt = f.attempt(session)
    a = f.request(session, attempt, "started", "learner", key="k")
    b = f.request(session, attempt, "started", "staff", key="k")
    assert a.id != b.id


def test_a_request_for_a_missing_or_archived_attempt_is_not_found(session: Session) -> None:
    attempt = f.attempt(session)
    with pytest.raises(NotFound):
        transitions.record_transition(
            session,
            attempt_id=attempt.id + 10_000,
            to_status=Status.started,
            source=Source.learner,
            idempotency_key="x",
        )
    from proctoring.attempts import archive_attempt

    archive_attempt(session, attempt.id)
    with pytest.raises(NotFound):
        f.request(session, attempt, "started", "learner")


def test_pending_request_of_an_archived_attempt_is_rejected(session: Session) -> None:
    from proctoring.attempts import archive_attempt

    attempt = f.attempt(session)
    transition = f.request(session, attempt, "started", "learner")
    archive_attempt(session, attempt.id)
    apply.apply_transitions(session, [transition.id])
    assert transition.state is TransitionState.rejected
    assert transition.detail == "attempt does not exist"


# --- step 2: the source -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("learner", "verified"),
        ("learner", "created"),
        ("learner", "rejected"),
        ("vendor", "started"),
        ("vendor", "submitted"),
        ("system", "submitted"),
        ("cascade", "started"),
    ],
)
def test_a_source_may_only_set_its_targets(session: Session, source: str, target: str) -> None:
    attempt = f.attempt(session)
    transition = f.move(session, attempt, target, source)
    assert transition.state is TransitionState.rejected
    assert transition.detail == refusal("created", target, attempt)
    assert attempt.status is Status.created


def test_the_source_rule_reads_the_target_before_aliasing(session: Session) -> None:
    # From an in-progress status, "created" would alias to submitted; a learner may not ask it.
    attempt = at(session, f.attempt(session), "started")
    transition = f.move(session, attempt, "created", "learner")
    assert transition.state is TransitionState.rejected
    assert transition.detail == refusal("started", "created", attempt)


@pytest.mark.parametrize("target", [s.value for s in Status if s is not Status.created])
def test_staff_may_set_any_status(session: Session, target: str) -> None:
    attempt = f.attempt(session)
    transition = f.move(session, attempt, target, "staff")
    assert transition.state is TransitionState.applied


# --- step 3: a vendor's ready -----------------------------------------------------------------


@pytest.mark.parametrize("start", ["created", "download_software_clicked"])
def test_vendor_ready_applies_before_the_exam(session: Session, start: str) -> None:
    attempt = at(session, f.attempt(session), start)
    transition = f.move(session, attempt, "ready_to_start", "vendor")
    assert transition.state is TransitionState.applied
    assert attempt.status is Status.ready_to_start


@pytest.mark.parametrize("start", ["ready_to_start", "started", "submitted", "verified"])
def test_vendor_ready_is_a_noop_later(session: Session, start: str) -> None:
    attempt = at(session, f.attempt(session), start)
    transition = f.move(session, attempt, "ready_to_start", "vendor")
    assert transition.state is TransitionState.noop
    assert "created or download_software_clicked" in (transition.detail or "")
    assert attempt.status == start


# --- step 4: same status ----------------------------------------------------------------------


def test_same_status_is_a_noop_and_nothing_else_happens(session: Session) -> None:
    attempt = at(session, f.attempt(session), "submitted")
    before = history(session, attempt)
    outbox_before = session.scalar(select(func.count()).select_from(Outbox))
    transition = f.move(session, attempt, "submitted", "learner")
    assert transition.state is TransitionState.noop
    assert (transition.from_status, transition.result_status) == (
        Status.submitted,
        Status.submitted,
    )
    assert history(session, attempt) == before
    assert session.scalar(select(func.count()).select_from(Outbox)) == outbox_before


# --- step 5: aliasing -------------------------------------------------------------------------


def test_timed_out_is_kept_from_created_when_the_provider_does_not_say(session: Session) -> None:
    attempt = f.attempt(session, f.exam(session, provider="acme"))
    transition = f.move(session, attempt, "timed_out", "learner")
    assert transition.result_status is Status.timed_out
    assert attempt.completed_at is None


def test_timed_out_becomes_submitted_once_started_when_the_provider_does_not_say(
    session: Session,
) -> None:
    attempt = at(session, f.attempt(session, f.exam(session, provider="acme")), "started")
    transition = f.move(session, attempt, "timed_out", "system")
    assert transition.state is TransitionState.applied
    assert transition.result_status is Status.submitted
    assert "timed_out became submitted" in (transition.detail or "")
    assert attempt.status is Status.submitted


def test_a_provider_that_allows_the_timed_out_state_keeps_it(session: Session) -> None:
    attempt = at(session, f.attempt(session, f.exam(session, provider="cleanview")), "started")
    transition = f.move(session, attempt, "timed_out", "system")
    assert transition.result_status is Status.timed_out
    assert attempt.completed_at is None  # a kept timed_out sets no time stamp


def test_a_provider_that_forbids_the_timed_out_state_submits_even_from_created(
    session: Session,
) -> None:
    attempt = f.attempt(session, f.exam(session, provider="strict"))
    transition = f.move(session, attempt, "timed_out", "learner")
    assert transition.result_status is Status.submitted


def test_an_exam_without_provider_uses_the_created_only_default(session: Session) -> None:
    attempt = at(session, f.attempt(session, f.exam(session, provider=None)), "started")
    assert f.move(session, attempt, "timed_out", "system").result_status is Status.submitted


def test_an_aliased_time_out_stamps_the_moment_the_time_ran_out(session: Session) -> None:
    attempt = at(session, f.attempt(session, f.exam(session, time_limit_mins=30)), "started")
    started = utcnow() - dt.timedelta(minutes=45)
    attempt.started_at = started
    f.move(session, attempt, "timed_out", "system")
    assert attempt.completed_at is not None
    assert abs(attempt.completed_at - (started + dt.timedelta(minutes=30))) < dt.timedelta(
        seconds=1
    )


def test_an_aliased_time_out_not_yet_due_stamps_now(session: Session) -> None:
    attempt = at(session, f.attempt(session, f.exam(session, time_limit_mins=30)), "started")
    f.move(session, attempt, "timed_out", "learner")
    assert attempt.completed_at is not None
    assert utcnow() - attempt.completed_at < dt.timedelta(seconds=5)


@pytest.mark.parametrize("target", ["created", "download_software_clicked", "ready_to_start"])
@pytest.mark.parametrize("start", ["started", "ready_to_submit"])
def test_re_entering_the_exam_submits_it(session: Session, start: str, target: str) -> None:
    attempt = at(session, f.attempt(session), start)
    transition = f.move(session, attempt, target, "staff")
    assert transition.state is TransitionState.applied
    assert transition.result_status is Status.submitted
    assert attempt.status is Status.submitted


def test_an_alias_to_the_current_status_is_a_noop(session: Session) -> None:
    attempt = at(session, f.attempt(session), "submitted")
    transition = f.move(session, attempt, "timed_out", "system")
    assert transition.state is TransitionState.noop
    assert history(session, attempt)[-1] == ("started", "submitted")


# --- step 6: legality -------------------------------------------------------------------------


@pytest.mark.parametrize("start", ["submitted", "declined", "verified", "error", "timed_out"])
@pytest.mark.parametrize("target", ["started", "ready_to_submit"])
def test_completed_to_incomplete_is_refused(session: Session, start: str, target: str) -> None:
    attempt = at(session, f.attempt(session), start)
    transition = f.move(session, attempt, target, "staff")
    assert transition.state is TransitionState.rejected
    assert transition.detail == refusal(start, target, attempt)
    assert attempt.status == start


def test_completed_to_pre_start_is_refused_with_the_target_as_requested(session: Session) -> None:
    attempt = at(session, f.attempt(session), "submitted")
    transition = f.move(session, attempt, "ready_to_start", "staff")
    assert transition.detail == refusal("submitted", "ready_to_start", attempt)


def test_completed_to_error_is_refused_to_a_learner(session: Session) -> None:
    attempt = at(session, f.attempt(session), "submitted")
    transition = f.move(session, attempt, "error", "learner")
    assert transition.state is TransitionState.rejected
    assert transition.detail == refusal("submitted", "error", attempt)


@pytest.mark.parametrize("source", ["vendor", "staff"])
def test_completed_to_error_is_allowed_to_the_vendor_and_staff(
    session: Session, source: str
) -> None:
    attempt = at(session, f.attempt(session), "submitted")
    assert f.move(session, attempt, "error", source).state is TransitionState.applied


def test_incomplete_to_error_is_allowed_to_a_learner(session: Session) -> None:
    attempt = at(session, f.attempt(session), "started")
    assert f.move(session, attempt, "error", "learner").state is TransitionState.applied


@pytest.mark.parametrize("start", ["second_review_required", "verified", "rejected"])
def test_a_learner_cannot_change_a_review(session: Session, start: str) -> None:
    attempt = at(session, f.attempt(session), start)
    transition = f.move(session, attempt, "declined", "learner")
    assert transition.state is TransitionState.rejected
    assert transition.detail == refusal(start, "declined", attempt)


@pytest.mark.parametrize("source", ["vendor", "staff"])
def test_vendor_and_staff_may_change_a_review(session: Session, source: str) -> None:
    attempt = at(session, f.attempt(session), "second_review_required")
    assert f.move(session, attempt, "verified", source).state is TransitionState.applied


def test_a_learner_may_decline_a_submitted_exam(session: Session) -> None:
    # completed → completed is legal; only reviewed statuses are closed to learners.
    attempt = at(session, f.attempt(session), "submitted")
    assert f.move(session, attempt, "declined", "learner").state is TransitionState.applied
