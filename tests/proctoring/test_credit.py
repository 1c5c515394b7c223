"""Credit requirements: upserted in order, cleared on archive, told to the LMS when asked."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
import sqlalchemy.exc
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from proctoring import apply, credit
from proctoring.attempts import archive_attempt
from proctoring.db import UnitOfWork, make_engine, make_session_factory
from proctoring.models import (
    Attempt,
    CreditRequirement,
    Outbox,
    OutboxKind,
    OutboxState,
    Transition,
)
from tests.support import factories as f
from tests.support.servers import HTTPEndpoint


def credit_rows(session: Session, attempt: Attempt) -> list[str]:
    return [
        row.status.value
        for row in session.scalars(
            select(CreditRequirement).where(CreditRequirement.user_id == attempt.user_id)
        )
    ]


def outbox_of(session: Session, transition: Transition, kind: str = "credit") -> Outbox:
    return session.scalars(
        select(Outbox).where(Outbox.transition_id == transition.id, Outbox.kind == kind)
    ).one()


def test_credit_follows_the_result(session: Session) -> None:
    attempt = f.attempt(session)
    f.move(session, attempt, "started")
    submit = f.move(session, attempt, "submitted")
    verify = f.move(session, attempt, "verified", "vendor")
    result = credit.settle_credit(f.same_session(session), [outbox_of(session, submit).id], None)
    assert credit_rows(session, attempt) == ["submitted"]
    assert result.done
    assert outbox_of(session, submit).state is OutboxState.done
    credit.settle_credit(f.same_session(session), [outbox_of(session, verify).id], None)
    session.flush()
    session.expire_all()
    assert credit_rows(session, attempt) == ["satisfied"]
    row = session.scalars(select(CreditRequirement)).one()
    exam = session.get_one(type(attempt), attempt.id)
    assert (row.namespace, row.transition_id) == ("proctored_exam", verify.id)
    assert row.name == f.exams.get_exam(session, exam.exam_id).content_id


def test_an_older_change_never_overwrites_a_newer_one(session: Session) -> None:
    attempt = f.attempt(session)
    f.move(session, attempt, "started")
    submit = f.move(session, attempt, "submitted")
    verify = f.move(session, attempt, "verified", "vendor")
    credit.settle_credit(f.same_session(session), [outbox_of(session, verify).id], None)
    credit.settle_credit(
        f.same_session(session), [outbox_of(session, submit).id], None
    )  # arrives late
    session.flush()
    session.expire_all()
    assert credit_rows(session, attempt) == ["satisfied"]


def test_settling_twice_is_harmless(session: Session) -> None:
    attempt = f.attempt(session)
    decline = f.move(session, attempt, "declined", "learner")
    row = outbox_of(session, decline)
    assert credit.settle_credit(f.same_session(session), [row.id], None).done == [row.id]
    assert credit.settle_credit(f.same_session(session), [row.id], None).done == []
    assert credit_rows(session, attempt) == ["failed"]


def test_archiving_clears_the_attempts_requirement_only(session: Session) -> None:
    learner = f.user(session)
    exam = f.exam(session)
    old = f.attempt(session, exam, learner)
    decline = f.move(session, old, "declined", "learner")
    credit.settle_credit(f.same_session(session), [outbox_of(session, decline).id], None)
    archive_attempt(session, old.id)
    clear = session.scalars(
        select(Outbox).where(Outbox.kind == OutboxKind.clear_credit, Outbox.attempt_id == old.id)
    ).one()
    credit.settle_credit(f.same_session(session), [clear.id], None)
    session.flush()
    session.expire_all()
    assert credit_rows(session, old) == []
    assert clear.state is OutboxState.done


def test_the_lms_hears_each_change_with_a_stable_idempotency_key(session: Session) -> None:
    attempt = f.attempt(session)
    decline = f.move(session, attempt, "declined", "learner")
    row = outbox_of(session, decline)
    with HTTPEndpoint(answers=[(503, {"Retry-After": "7"}), (200, {})]) as lms:
        webhook = credit.CreditWebhook(lms.url)
        first = credit.settle_credit(f.same_session(session), [row.id], webhook)
        assert (first.retry_ids, first.retry_after) == ([row.id], 7.0)
        assert row.state is OutboxState.pending
        second = credit.settle_credit(f.same_session(session), [row.id], webhook)
        assert second.done == [row.id]
        webhook.close()
    assert [r.headers["Idempotency-Key"] for r in lms.received] == [f"proctorq-credit-{row.id}"] * 2
    user = session.get_one(f.User, attempt.user_id)
    exam = f.exams.get_exam(session, attempt.exam_id)
    assert lms.received[-1].body == {
        "user_id": attempt.user_id,
        "username": user.username,
        "course_id": exam.course_id,
        "namespace": "proctored_exam",
        "name": exam.content_id,
        "status": "failed",
        "transition_id": decline.id,
    }


def test_a_client_error_from_the_lms_ends_failed_with_its_answer(session: Session) -> None:
    attempt = f.attempt(session)
    row = outbox_of(session, f.move(session, attempt, "declined", "learner"))
    with HTTPEndpoint(answers=[(422, {})]) as lms:
        result = credit.settle_credit(
            f.same_session(session), [row.id], credit.CreditWebhook(lms.url)
        )
    assert result.failed == [row.id]
    assert row.state is OutboxState.failed
    assert "422" in (row.detail or "")
    assert credit_rows(session, attempt) == ["failed"]  # kept in the database all the same


def test_429_and_network_errors_are_retried(session: Session) -> None:
    attempt = f.attempt(session)
    row = outbox_of(session, f.move(session, attempt, "declined", "learner"))
    with HTTPEndpoint(answers=[(429, {})]) as lms:
        assert credit.settle_credit(
            f.same_session(session), [row.id], credit.CreditWebhook(lms.url)
        ).retry_ids
    unreachable = credit.CreditWebhook("http://127.0.0.1:9/credit", timeout=1)
    assert credit.settle_credit(f.same_session(session), [row.id], unreachable).retry_ids == [
        row.id
    ]


def test_retry_after_reads_seconds_and_dates() -> None:
    assert credit.retry_after_seconds("12") == 12.0
    assert credit.retry_after_seconds(None) is None
    assert credit.retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert credit.retry_after_seconds("soon") is None


@pytest.mark.parametrize("value", ["²", "①", "٣", "１２", "1" * 5000, "1" * 400])
def test_retry_after_that_is_not_ascii_seconds_is_ignored(value: str) -> None:
    """Digits Python counts as such but HTTP does not, and numbers too large for a float:
    no wait is read, so the usual backoff applies."""
    assert credit.retry_after_seconds(value) is None


def test_order_is_the_order_applied_even_around_a_held_review(session: Session) -> None:
    from proctoring import reviews

    attempt = f.attempt(session)
    f.move(session, attempt, "started")
    held = reviews.record_review(
        session,
        provider="acme",
        webhook_id="held-1",
        status="passed",
        attempt_code=attempt.attempt_code,
    )
    assert held.review.state.value == "held"
    submit = f.request(session, attempt, "submitted", "learner")
    reject = f.request(session, attempt, "rejected", "staff")  # received before the review
    apply.apply_transitions(session, [submit.id, reject.id])  # ...applied after it
    session.flush()
    rows = session.scalars(select(Outbox).where(Outbox.kind == OutboxKind.credit)).all()
    for row in sorted(rows, key=lambda r: -r.id):  # the worst order: newest first
        credit.settle_credit(f.same_session(session), [row.id], None)
    session.flush()
    session.expire_all()
    assert credit_rows(session, attempt) == ["failed"]  # the staff rejection came last


def test_the_lms_is_called_after_the_local_write_is_committed(postgres_url: str) -> None:
    """A hanging or absent LMS cannot roll back the credit kept in the database."""
    engine = make_engine(postgres_url)
    uow = UnitOfWork(make_session_factory(engine))
    with uow() as session:
        attempts = [f.attempt(session) for _ in range(2)]
        rows = [outbox_of(session, f.move(session, a, "declined", "learner")).id for a in attempts]
    seen: list[list[str]] = []

    def lms_away(change: credit.CreditChange, idempotency_key: str) -> str | None:
        with uow() as other:  # another transaction sees the requirement already
            seen.append(credit_rows(other, attempts[0]))
        raise credit.RetryLater("credit webhook unreachable: ReadTimeout")

    result = credit.settle_credit(uow, rows, lms_away)
    assert seen == [["failed"]]  # the second change was not tried: the LMS is away for it too
    assert sorted(result.retry_ids) == sorted(rows)
    with uow() as session:
        for row_id in rows:
            row = session.get_one(Outbox, row_id)
            assert row.state is OutboxState.pending and row.tries == 1
            assert row.detail == "credit webhook unreachable: ReadTimeout"
        assert [credit_rows(session, a) for a in attempts] == [["failed"], ["failed"]]
    sent: list[tuple[str | None, str]] = []
    with uow() as session:
        session.execute(update(Outbox).values(next_try_at=None))

    def lms_back(change: credit.CreditChange, idempotency_key: str) -> str | None:
        sent.append((change.status, idempotency_key))
        return None

    result = credit.settle_credit(uow, rows, lms_back)
    assert sorted(result.done) == sorted(rows)
    assert sent == [("failed", f"proctorq-credit-{row_id}") for row_id in rows]
    engine.dispose()


def test_408_409_425_are_tried_again_and_other_client_errors_are_final(session: Session) -> None:
    attempt = f.attempt(session)
    row = outbox_of(session, f.move(session, attempt, "declined", "learner"))
    for status in (408, 409, 425, 429, 500, 503):
        with HTTPEndpoint(answers=[(status, {})]) as lms:
            result = credit.settle_credit(
                f.same_session(session), [row.id], credit.CreditWebhook(lms.url)
            )
        assert result.retry_ids == [row.id], status
    with HTTPEndpoint(answers=[(404, {})]) as lms:
        result = credit.settle_credit(
            f.same_session(session), [row.id], credit.CreditWebhook(lms.url)
        )
    assert result.failed == [row.id]


def test_answers_are_written_once_the_database_is_back(postgres_url: str) -> None:
    """The database goes away after the LMS was told, for longer than a deadlock's retries:
    the answers wait for it, and the rows end done instead of staying leased for as long as
    the whole batch's calls could have taken (timeout x calls), to be sent again after."""
    engine = make_engine(postgres_url)
    uow = UnitOfWork(make_session_factory(engine))
    with uow() as session:
        rows = [
            outbox_of(session, f.move(session, f.attempt(session), "declined", "learner")).id
            for _ in range(3)
        ]
    away_until: list[float] = []

    @contextlib.contextmanager
    def flaky() -> Iterator[Session]:
        if away_until and time.monotonic() < away_until[0]:
            raise sqlalchemy.exc.OperationalError("UPDATE outbox", {}, Exception("refused"))
        with uow() as session:
            yield session

    def lms(change: credit.CreditChange, idempotency_key: str) -> str | None:
        if not away_until:  # the database leaves once the first call is made
            away_until.append(time.monotonic() + 3)
        return None

    result = credit.settle_credit(flaky, rows, lms, lease_seconds=300)
    assert sorted(result.done) == sorted(rows)
    with uow() as session:
        states = {session.get_one(Outbox, r).state for r in rows}
    assert states == {OutboxState.done}
    engine.dispose()
