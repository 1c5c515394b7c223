"""The rules of applying, on objects in memory: no database, no session.

docs/behaviour.md, "Applying a transition", steps 1 to 8. The same rules run end to end on a
real database in test_transitions.py; here each is pinned alone, over sources and statuses.
"""

from __future__ import annotations

import datetime as dt

import pytest

from proctoring import rules, statuses
from proctoring.clock import utcnow
from proctoring.models import Attempt, Exam, Transition, TransitionState
from proctoring.statuses import Source, Status

NOW = utcnow()
COMPLETED = [s for s in Status if statuses.is_completed(s)]
INCOMPLETE = [s for s in Status if statuses.is_incomplete(s)]
REVIEWED = [s for s in Status if statuses.is_reviewed(s)]


def decide(
    source: str,
    current: str,
    requested: str,
    *,
    provider: str | None = "acme",
    archived: bool = False,
    proctored: bool = True,
    started_minutes_ago: int | None = None,
    limit_mins: int = 30,
) -> rules.Step:
    started = (
        None if started_minutes_ago is None else NOW - dt.timedelta(minutes=started_minutes_ago)
    )
    attempt = Attempt(
        id=1,
        exam_id=2,
        user_id=3,
        status=Status(current),
        archived_at=NOW if archived else None,
        taking_as_proctored=proctored,
        started_at=started,
        allowed_time_limit_mins=None if started is None else limit_mins,
    )
    exam = Exam(id=2, provider=provider, time_limit_mins=limit_mins, due_date=None)
    transition = Transition(to_status=Status(requested), source=Source(source))
    return rules.decide(attempt, exam, transition, NOW)


def refusal(current: str, target: str) -> str:
    return rules.refusal(Status(current), Status(target), 2, 3)


@pytest.mark.parametrize(
    ("source", "current", "requested", "state", "result"),
    [
        # 2. the source's targets, judged as requested
        ("learner", "created", "started", "applied", "started"),
        ("learner", "created", "verified", "rejected", None),
        ("learner", "started", "created", "rejected", None),
        ("vendor", "created", "started", "rejected", None),
        ("system", "started", "submitted", "rejected", None),
        ("cascade", "created", "started", "rejected", None),
        # 3. a vendor's ready, only before the exam
        ("vendor", "created", "ready_to_start", "applied", "ready_to_start"),
        ("vendor", "download_software_clicked", "ready_to_start", "applied", "ready_to_start"),
        ("vendor", "started", "ready_to_start", "noop", None),
        ("vendor", "verified", "ready_to_start", "noop", None),
        # 4. a review of a declined attempt is stored, not applied
        ("vendor", "declined", "verified", "noop", None),
        # 5. the same status
        ("staff", "submitted", "submitted", "noop", None),
        ("learner", "started", "started", "noop", None),
        # 6. a cascade leaves an attempt that is over alone
        ("cascade", "submitted", "declined", "noop", None),
        ("cascade", "started", "declined", "applied", "declined"),
        # 7. aliasing: re-entering the exam submits it; an alias to the current status is a noop
        ("staff", "started", "created", "applied", "submitted"),
        ("staff", "ready_to_submit", "download_software_clicked", "applied", "submitted"),
        ("system", "submitted", "timed_out", "noop", None),
        # 8. legality
        ("staff", "submitted", "started", "rejected", None),
        ("learner", "submitted", "error", "rejected", None),
        ("vendor", "submitted", "error", "applied", "error"),
        ("staff", "submitted", "error", "applied", "error"),
        ("learner", "started", "error", "applied", "error"),
        ("learner", "verified", "declined", "rejected", None),
        ("staff", "verified", "declined", "applied", "declined"),
        ("learner", "submitted", "declined", "applied", "declined"),
    ],
)
def test_what_a_request_comes_to(
    source: str, current: str, requested: str, state: str, result: str | None
) -> None:
    step = decide(source, current, requested)
    assert (step.state, step.result) == (
        TransitionState(state),
        None if result is None else Status(result),
    )


def test_an_archived_attempt_rejects_everything() -> None:
    step = decide("staff", "started", "submitted", archived=True)
    assert (step.state, step.detail) == (TransitionState.rejected, "attempt does not exist")


def test_a_refusal_names_the_target_as_requested_or_after_aliasing() -> None:
    assert decide("learner", "started", "created").detail == refusal("started", "created")
    assert decide("staff", "submitted", "ready_to_start").detail == refusal(
        "submitted", "ready_to_start"
    )


def test_a_review_of_an_attempt_not_taken_as_proctored_is_stored() -> None:
    step = decide("vendor", "submitted", "verified", proctored=False)
    assert (step.state, step.detail) == (TransitionState.noop, rules.REVIEW_NOT_APPLIED)


@pytest.mark.parametrize(
    ("provider", "current", "kept"),
    [
        ("acme", "created", True),  # the provider does not say: kept only while created
        ("acme", "started", False),
        (None, "started", False),
        ("cleanview", "started", True),  # allows the timed-out state
        ("strict", "created", False),  # forbids it
    ],
)
def test_a_time_out_is_kept_or_becomes_a_submit(
    provider: str | None, current: str, kept: bool
) -> None:
    source = "learner" if current == "created" else "system"
    step = decide(source, current, "timed_out", provider=provider)
    assert step.result is (Status.timed_out if kept else Status.submitted)
    assert (step.completed_at is None) is kept


def test_an_aliased_time_out_is_submitted_as_of_the_moment_the_time_ran_out() -> None:
    step = decide("system", "started", "timed_out", started_minutes_ago=45, limit_mins=30)
    assert step.completed_at == NOW - dt.timedelta(minutes=15)
    not_yet_due = decide("system", "started", "timed_out", started_minutes_ago=5)
    assert not_yet_due.completed_at == NOW
    unknown = decide("system", "started", "timed_out")
    assert unknown.completed_at == NOW


@pytest.mark.parametrize("source", list(Source))
@pytest.mark.parametrize("current", COMPLETED)
@pytest.mark.parametrize("target", INCOMPLETE)
def test_nothing_completed_becomes_incomplete_again(
    source: Source, current: Status, target: Status
) -> None:
    assert not rules.legal(current, target, source)


@pytest.mark.parametrize("source", list(Source))
@pytest.mark.parametrize("current", COMPLETED)
def test_only_a_vendor_or_staff_move_a_completed_attempt_to_error(
    source: Source, current: Status
) -> None:
    allowed = source in (Source.vendor, Source.staff)
    assert rules.legal(current, Status.error, source) is allowed


@pytest.mark.parametrize("current", REVIEWED)
@pytest.mark.parametrize("target", COMPLETED)
def test_a_learner_changes_no_review(current: Status, target: Status) -> None:
    assert not rules.legal(current, target, Source.learner)
    assert rules.legal(current, target, Source.staff)


@pytest.mark.parametrize(
    ("due_in", "minutes"),
    [(None, 75), (dt.timedelta(minutes=30, seconds=40), 30), (dt.timedelta(minutes=-5), 0)],
)
def test_the_allowed_time_is_the_limit_or_the_whole_minutes_left(
    due_in: dt.timedelta | None, minutes: int
) -> None:
    exam = Exam(time_limit_mins=75, due_date=None if due_in is None else NOW + due_in)
    assert rules.allowed_minutes(exam, NOW) == minutes
