"""Recording and applying requests, rule by rule, on a real database (SQLite and PostgreSQL).

docs/behaviour.md, "Applying a transition" and "Who may set what"; the rules alone, without a
database, are in test_rules.py."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from proctoring import apply, transitions
from proctoring.clock import utcnow
from proctoring.db import pending_wakeups
from proctoring.errors import Conflict, NotFound
from proctoring.ledger import APPLY
from proctoring.models import (
    Attempt,
    AttemptHistory,
    Outbox,
    Review,
    ReviewState,
    Transition,
    TransitionState,
)
from proctoring.statuses import Source, Status
from proctoring.transitions import review_key
from tests import factories as f


def refusal(frm: str, to: str, attempt: Attempt) -> str:
    return (
        f"A status transition from {frm} to {to} was attempted on exam_id {attempt.exam_id} "
        f"for user_id {attempt.user_id}. This is not allowed!"
    )


def history(session: Session, attempt: Attempt) -> list[tuple[str, str]]:
    rows = session.scalars(
        select(AttemptHistory)
        .where(AttemptHistory.attempt_id == attempt.id)
        .order_by(AttemptHistory.id)
    )
    return [(row.from_status.value, row.to_status.value) for row in rows]


def outbox_kinds(session: Session, transition: Transition) -> list[str]:
    rows = session.scalars(
        select(Outbox).where(Outbox.transition_id == transition.id).order_by(Outbox.id)
    )
    return [row.kind.value for row in rows]


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
        f.move(session, attempt, step, "staff")
    assert attempt.status == status
    return attempt


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


# --- step 7: writing --------------------------------------------------------------------------


def test_the_first_start_stamps_the_start_and_the_allowed_time(session: Session) -> None:
    attempt = f.attempt(session, f.exam(session, time_limit_mins=75))
    transition = f.move(session, attempt, "started", "learner")
    assert (transition.from_status, transition.result_status) == (Status.created, Status.started)
    assert transition.applied_at is not None
    assert attempt.started_at is not None
    assert attempt.allowed_time_limit_mins == 75


def test_a_due_date_shortens_the_allowed_time_to_whole_minutes_left(session: Session) -> None:
    due = utcnow() + dt.timedelta(minutes=30, seconds=40)
    attempt = f.attempt(session, f.exam(session, time_limit_mins=75, due_date=due))
    f.move(session, attempt, "started", "learner")
    assert attempt.allowed_time_limit_mins == 30


def test_a_past_due_date_allows_no_time(session: Session) -> None:
    due = utcnow() - dt.timedelta(minutes=5)
    attempt = f.attempt(session, f.exam(session, time_limit_mins=75, due_date=due))
    f.move(session, attempt, "started", "learner")
    assert attempt.allowed_time_limit_mins == 0


def test_only_the_first_start_stamps(session: Session) -> None:
    attempt = at(session, f.attempt(session), "ready_to_submit")
    first = attempt.started_at
    f.move(session, attempt, "started", "staff")
    assert attempt.started_at == first


def test_submitted_stamps_completion(session: Session) -> None:
    attempt = at(session, f.attempt(session), "started")
    f.move(session, attempt, "submitted", "learner")
    assert attempt.completed_at is not None


def test_history_has_a_row_per_applied_request_only(session: Session) -> None:
    attempt = f.attempt(session)
    f.move(session, attempt, "started", "learner")
    f.move(session, attempt, "started", "learner")  # noop
    f.move(session, attempt, "verified", "learner")  # rejected
    f.move(session, attempt, "submitted", "learner")
    assert history(session, attempt) == [("created", "started"), ("started", "submitted")]


# --- step 8: follow-ups -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kinds"),
    [
        (["started"], []),
        (["started", "submitted"], ["credit", "email"]),
        (["started", "submitted", "verified"], ["credit", "email"]),
        (["started", "submitted", "rejected"], ["credit", "cascade", "email"]),
        (["started", "submitted", "second_review_required"], []),
        (["declined"], ["credit", "cascade"]),
        (["started", "error"], ["credit"]),
        (["timed_out"], []),
    ],
)
def test_follow_ups_of_each_result(session: Session, path: list[str], kinds: list[str]) -> None:
    attempt = f.attempt(session)
    transition = None
    for step in path:
        transition = f.move(session, attempt, step, "staff")
    assert transition is not None
    assert outbox_kinds(session, transition) == kinds
    for kind in kinds:
        assert kind in [w.kind for w in pending_wakeups(session)]


def test_no_email_when_not_taken_as_proctored(session: Session) -> None:
    attempt = at(session, f.attempt(session, taking_as_proctored=False), "started")
    assert outbox_kinds(session, f.move(session, attempt, "submitted")) == ["credit"]


def test_no_email_for_a_practice_exam(session: Session) -> None:
    exam = f.exam(session, is_practice_exam=True)
    attempt = at(session, f.attempt(session, exam), "started")
    assert attempt.is_sample_attempt
    assert outbox_kinds(session, f.move(session, attempt, "submitted")) == ["credit"]


def test_a_decline_drops_proctoring_and_the_vendor_id(session: Session) -> None:
    attempt = f.attempt(session, external_id="vendor-1")
    f.move(session, attempt, "declined", "learner")
    assert attempt.taking_as_proctored is False
    assert attempt.external_id is None


def test_a_rejection_keeps_proctoring(session: Session) -> None:
    attempt = at(session, f.attempt(session, external_id="vendor-2"), "rejected")
    assert attempt.taking_as_proctored is True
    assert attempt.external_id == "vendor-2"


# --- order ------------------------------------------------------------------------------------


def test_pending_requests_of_an_attempt_apply_in_received_order(session: Session) -> None:
    attempt = f.attempt(session)
    steps = ["download_software_clicked", "ready_to_start", "started", "ready_to_submit"]
    requests = [f.request(session, attempt, s, "learner") for s in [*steps, "submitted"]]
    # A message for the last request applies every earlier one first.
    apply.apply_transitions(session, [requests[-1].id])
    session.refresh(attempt)
    assert [t.state for t in requests] == [TransitionState.applied] * 5
    assert [h[1] for h in history(session, attempt)] == [*steps, "submitted"]
    assert apply.apply_transitions(session, [r.id for r in requests]) == []


# --- one attempt's failure is its own ----------------------------------------------------------


def _unappliable_submit(session: Session) -> Transition:
    """A submit that cannot be applied: the review it releases has a key a ready notice
    already took (data recorded before a webhook id named one message only)."""
    attempt = f.attempt(session)
    f.move(session, attempt, "started", "learner")
    notice = f.request(
        session, f.attempt(session), "ready_to_start", "vendor", key=review_key("acme", "dup-1")
    )
    apply.apply_transitions(session, [notice.id])
    session.add(
        Review(
            attempt_id=attempt.id,
            provider="acme",
            webhook_id="dup-1",
            review_status="passed",
            outcome=Status.verified,
            comments="",
            received_at=utcnow(),
            state=ReviewState.held,
            answered_state=ReviewState.held,
        )
    )
    return f.request(session, attempt, "submitted", "learner")


def _woken_outbox_rows_exist(session: Session) -> bool:
    woken = [w.id for w in pending_wakeups(session) if w.kind != APPLY]
    found = session.scalars(select(Outbox.id).where(Outbox.id.in_(woken))).all()
    return sorted(found) == sorted(set(woken))


def test_a_drained_attempt_that_fails_leaves_the_named_ones_applied(session: Session) -> None:
    bad = _unappliable_submit(session)
    good = f.request(session, f.attempt(session), "started", "learner")
    done = apply.apply_transitions(session, [good.id], drain=100)
    assert [t.id for t in done] == [good.id]
    assert good.state is TransitionState.applied
    assert bad.state is TransitionState.pending  # left for the task that names it
    assert _woken_outbox_rows_exist(session)
    # Its own task fails it alone, with the reason, for an operator to replay.
    apply.apply_transitions(session, [bad.id], drain=100)
    assert bad.state is TransitionState.failed
    assert bad.detail is not None and bad.detail.startswith("could not be applied: ")


def test_a_named_attempt_that_fails_fails_alone(session: Session) -> None:
    bad = _unappliable_submit(session)
    good = f.request(session, f.attempt(session), "started", "learner")
    later = f.request(session, f.attempt(session), "started", "learner")
    apply.apply_transitions(session, [good.id, bad.id])
    assert (good.state, bad.state) == (TransitionState.applied, TransitionState.failed)
    assert later.state is TransitionState.pending  # not named, not drained: untouched
    assert _woken_outbox_rows_exist(session)
