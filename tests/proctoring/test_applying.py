"""SPEC §4, steps 7 and 8 and what follows: what applying a request writes, its follow-ups,
the order requests apply in, deliveries counted, and one attempt's failure kept its own, on a
real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from proctoring import apply
from proctoring.clock import utcnow
from proctoring.db import make_engine, pending_wakeups
from proctoring.ledger import APPLY
from proctoring.models import (
    Attempt,
    Outbox,
    Review,
    ReviewState,
    Transition,
    TransitionState,
)
from proctoring.statuses import Status
from proctoring.transitions import review_key
from tests.support import factories as f
from tests.support.factories import at, history


def outbox_kinds(session: Session, transition: Transition) -> list[str]:
    rows = session.scalars(
        select(Outbox).where(Outbox.transition_id == transition.id).order_by(Outbox.id)
    )
    return [row.kind.value for row in rows]


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


def _held_attempt(engine: Engine) -> tuple[int, int]:
    with Session(engine) as session, session.begin():
        attempt = f.attempt(session)
        return attempt.id, f.request(session, attempt, "started", "learner").id


def _key_share(session: Session, attempt_id: int) -> None:
    """What a follow-up inserting a row that names the attempt holds (an e-mail's claim)."""
    session.execute(
        select(Attempt.id)
        .where(Attempt.id == attempt_id)
        .with_for_update(read=True, key_share=True)
    ).one()


def test_a_drain_skips_an_attempt_another_holds_and_wakes_its_request(postgres_url: str) -> None:
    """A batch does not wait over work it was not asked for; the request it leaves out gets a
    message, which names it and so waits for the holder."""
    engine = make_engine(postgres_url)
    attempt_id, request_id = _held_attempt(engine)
    with Session(engine) as holder, holder.begin():
        _key_share(holder, attempt_id)
        with Session(engine) as other, other.begin():
            began = time.monotonic()
            assert apply.apply_transitions(other, [], drain=10) == []
            assert time.monotonic() - began < 2
            assert [w.id for w in pending_wakeups(other)] == [request_id]
    engine.dispose()


def test_a_drain_leaves_an_attempt_an_applier_holds_to_it(postgres_url: str) -> None:
    """No message for a request whose attempt another applier holds: that one applies it."""
    engine = make_engine(postgres_url)
    attempt_id, _ = _held_attempt(engine)
    with Session(engine) as holder, holder.begin():
        apply.lock_attempts(holder, [attempt_id])
        with Session(engine) as other, other.begin():
            assert apply.apply_transitions(other, [], drain=10) == []
            assert pending_wakeups(other) == []
    engine.dispose()


def test_a_named_attempt_is_waited_for_whoever_holds_it(postgres_url: str) -> None:
    """Another applier holding it has applied the request by then; an e-mail's claim holding
    it has not, and the request would otherwise wait for the sweep."""
    engine = make_engine(postgres_url)
    attempt_id, request_id = _held_attempt(engine)
    locked = threading.Event()

    def hold() -> None:
        with Session(engine) as holder, holder.begin():
            _key_share(holder, attempt_id)
            locked.set()
            time.sleep(0.3)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert locked.wait(10)
        with Session(engine) as session, session.begin():
            applied = apply.apply_transitions(session, [request_id], drain=10)
            assert [t.id for t in applied] == [request_id]
    finally:
        thread.join()
    engine.dispose()


def test_a_drain_that_leaves_requests_behind_wakes_the_first_of_them(session: Session) -> None:
    """A message drains a batch; when more were waiting, it sends one message for the rest, so
    a backlog is drained batch after batch without a message per request (the API sends none
    while an apply message waits: workers/publisher.py, DrainWaiting)."""
    requests = [f.request(session, f.attempt(session), "started", "learner") for _ in range(5)]
    session.info.pop("wakeups", None)  # those of recording them
    done = apply.apply_transitions(session, [], drain=3)
    assert [t.id for t in done] == [r.id for r in requests[:3]]
    assert [w.id for w in pending_wakeups(session) if w.kind == "apply"] == [requests[3].id]
    session.info.pop("wakeups", None)
    assert len(apply.apply_transitions(session, [], drain=3)) == 2
    assert [w for w in pending_wakeups(session) if w.kind == "apply"] == []  # none left
