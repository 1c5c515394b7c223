"""Follow-ups retried by time: the waits between tries, a row postponed, the budget."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy.exc
from sqlalchemy import update
from sqlalchemy.orm import Session

from proctoring import outbox
from proctoring.clock import utcnow
from proctoring.ledger import OUTBOX
from proctoring.models import Outbox, OutboxState
from tests.support import factories as f


def test_a_retry_waits_about_a_second_then_doubles_up_to_two_minutes() -> None:
    policy = outbox.RetryPolicy()
    for tries, ceiling in [(1, 1), (2, 2), (3, 4), (7, 64), (8, 120), (30, 120)]:
        waits = [policy.wait(tries) for _ in range(50)]
        assert all(0.75 * ceiling <= w <= ceiling for w in waits)
        assert len(set(waits)) > 1  # jittered: rows retried after an outage spread out
    assert policy.wait(1, asked=30) == 30  # a dependency's Retry-After is obeyed
    assert policy.wait(1, asked=10**6) == policy.longest_asked_seconds


def test_a_postponed_row_is_not_delivered_before_its_next_try(session: Session) -> None:
    decline = f.move(session, f.attempt(session), "declined", "learner")
    row = session.query(Outbox).filter(Outbox.transition_id == decline.id).first()
    assert row is not None
    assert OUTBOX.count_delivery(session, [row.id], limit=8) == [row.id]
    over, wait = outbox.postpone(session, [row.id], "SMTP server unreachable", POLICY)
    assert over == [] and wait is not None and 0.75 <= wait <= 1
    session.refresh(row)
    assert (row.tries, row.deliveries, row.detail) == (1, 0, "SMTP server unreachable")
    assert row.next_try_at is not None and row.retrying_since is not None
    # Neither a duplicate message nor the relay delivers it before then.
    assert OUTBOX.count_delivery(session, [row.id], limit=8) == []
    session.execute(update(Outbox).where(Outbox.id != row.id).values(state=OutboxState.done))
    session.execute(update(Outbox).values(created_at=utcnow() - dt.timedelta(minutes=5)))
    session.info.pop("wakeups", None)
    assert OUTBOX.sweep(session, dt.timedelta(seconds=5)) == 0
    # Once due, it is delivered again; the relay waits for the retry's own message first.
    due_at = utcnow() - dt.timedelta(seconds=1)
    session.execute(update(Outbox).where(Outbox.id == row.id).values(next_try_at=due_at))
    assert OUTBOX.sweep(session, dt.timedelta(seconds=5)) == 0
    session.execute(
        update(Outbox)
        .where(Outbox.id == row.id)
        .values(last_published_at=utcnow() - dt.timedelta(seconds=10))
    )
    assert OUTBOX.sweep(session, dt.timedelta(seconds=5)) == 1
    assert OUTBOX.count_delivery(session, [row.id], limit=8) == [row.id]


def test_an_outage_longer_than_the_delivery_count_fails_nothing(session: Session) -> None:
    decline = f.move(session, f.attempt(session), "declined", "learner")
    row = session.query(Outbox).filter(Outbox.transition_id == decline.id).first()
    assert row is not None
    for _ in range(40):  # five times the delivery limit, each try recorded as failed
        session.execute(update(Outbox).where(Outbox.id == row.id).values(next_try_at=None))
        assert OUTBOX.count_delivery(session, [row.id], limit=8) == [row.id]
        assert outbox.postpone(session, [row.id], "LMS answered 503", POLICY)[0] == []
    session.refresh(row)
    assert (row.state, row.tries) == (OutboxState.pending, 40)


def test_a_row_failing_longer_than_the_budget_ends_failed_and_replays_afresh(
    session: Session,
) -> None:
    decline = f.move(session, f.attempt(session), "declined", "learner")
    row = session.query(Outbox).filter(Outbox.transition_id == decline.id).first()
    assert row is not None
    outbox.postpone(session, [row.id], "LMS answered 503", POLICY)
    session.execute(
        update(Outbox)
        .where(Outbox.id == row.id)
        .values(retrying_since=utcnow() - dt.timedelta(hours=24, seconds=1))
    )
    over, _ = outbox.postpone(session, [row.id], "LMS answered 503", POLICY)
    assert over == [row.id]
    session.refresh(row)
    assert row.state is OutboxState.failed
    assert row.detail == "LMS answered 503; still failing after 24 h of tries"
    assert OUTBOX.replay(session, [row.id]) == [row.id]
    session.flush()
    session.refresh(row)
    assert (row.state, row.tries, row.retrying_since, row.next_try_at) == (
        OutboxState.pending,
        0,
        None,
        None,
    )


POLICY = outbox.RetryPolicy()


def test_answers_already_received_are_written_again_after_a_deadlock() -> None:
    """The calls are made; a transient error while writing their answers is tried again
    there, with a fresh result, instead of failing the task (which would send them again)."""
    tries: list[int] = []

    @contextlib.contextmanager
    def uow() -> Iterator[Any]:
        yield object()

    def write(session: Any, result: outbox.FollowUpResult) -> None:
        result.done.append(7)
        tries.append(1)
        if len(tries) < 3:
            raise sqlalchemy.exc.OperationalError("UPDATE outbox", {}, Exception("deadlock"))

    result = outbox.record_answers(uow, write)
    assert result.done == [7] and len(tries) == 3

    def always(session: Any, result: outbox.FollowUpResult) -> None:
        raise sqlalchemy.exc.OperationalError("UPDATE outbox", {}, Exception("gone"))

    with pytest.raises(sqlalchemy.exc.OperationalError):
        outbox.record_answers(uow, always, patience_seconds=0.2)
