"""The pipeline's books on the inbox and the outbox: deliveries counted, failures kept and
replayed, nothing pending forgotten by the sweep, and the operators' view of it all."""

from __future__ import annotations

import datetime as dt
import time

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from proctoring import apply, operations, outbox
from proctoring.clock import utcnow
from proctoring.db import make_engine, pending_wakeups
from proctoring.ledger import INBOX, OUTBOX
from proctoring.models import Outbox, OutboxState, Transition, TransitionState
from tests.support import factories as f


def age(session: Session, seconds: int) -> None:
    past = utcnow() - dt.timedelta(seconds=seconds)
    session.execute(update(Transition).values(received_at=past))
    session.execute(update(Outbox).values(created_at=past))
    session.expire_all()


def test_the_sweep_publishes_stale_rows_again_once_per_interval(session: Session) -> None:
    attempt = f.attempt(session)
    request = f.request(session, attempt, "started", "learner")
    done = f.move(session, attempt, "declined", "learner")  # applies both; leaves follow-ups
    session.flush()
    age(session, 60)
    session.info.pop("wakeups", None)
    pending_before = f.request(session, attempt, "error", "staff")
    session.flush()
    age(session, 60)
    session.info.pop("wakeups", None)

    count = INBOX.sweep(session, dt.timedelta(seconds=5)) + OUTBOX.sweep(
        session, dt.timedelta(seconds=5)
    )
    woken = {(w.kind, w.id) for w in pending_wakeups(session)}
    assert ("apply", pending_before.id) in woken
    assert ("apply", request.id) not in woken
    assert ("apply", done.id) not in woken
    assert {"credit", "cascade"} <= {kind for kind, _ in woken}
    assert count == len(woken)
    session.info.pop("wakeups", None)
    assert INBOX.sweep(session, dt.timedelta(seconds=5)) == 0  # published just now
    assert OUTBOX.sweep(session, dt.timedelta(seconds=5)) == 0


def test_backlog_and_failures_are_visible_and_replayable(session: Session) -> None:
    attempt = f.attempt(session)
    t = f.request(session, attempt, "started", "learner")
    decline = f.move(session, f.attempt(session), "declined", "learner")
    INBOX.fail(session, [t.id], "worker kept dying")
    rows = session.query(Outbox).filter(Outbox.transition_id == decline.id).all()
    outbox.fail_outbox(session, [rows[0].id], "LMS said 400")
    session.flush()
    report = operations.backlog(session)
    assert report.failed_transitions == 1
    assert report.failed_follow_ups == 1
    assert report.pending_follow_ups == len(rows) - 1
    failed = operations.failed_items(session)
    assert {(i.kind, i.id) for i in failed} == {("transition", t.id), (rows[0].kind, rows[0].id)}
    assert "worker kept dying" in {i.detail for i in failed}
    replayed = operations.replay(session, everything=True)
    assert replayed == ([t.id], [rows[0].id])
    session.flush()
    session.expire_all()
    assert operations.backlog(session).failed_transitions == 0
    assert session.get_one(Outbox, rows[0].id).state is OutboxState.pending


def test_outbox_deliveries_are_counted(session: Session) -> None:
    decline = f.move(session, f.attempt(session), "declined", "learner")
    row = session.query(Outbox).filter(Outbox.transition_id == decline.id).first()
    assert row is not None
    assert OUTBOX.count_delivery(session, [row.id], limit=1) == [row.id]
    assert OUTBOX.count_delivery(session, [row.id], limit=1) == []
    session.flush()
    session.refresh(row)
    assert row.state is OutboxState.failed


def test_deliveries_are_counted_and_a_request_fails_past_the_limit(session: Session) -> None:
    attempt = f.attempt(session)
    transition = f.request(session, attempt, "started", "learner")
    for _ in range(3):
        assert INBOX.count_delivery(session, [transition.id], limit=3) == [transition.id]
    assert INBOX.count_delivery(session, [transition.id], limit=3) == []
    session.refresh(transition)
    assert transition.state is TransitionState.failed
    assert "gave up after 3 deliveries" in (transition.detail or "")


def test_a_failed_request_can_be_replayed(session: Session) -> None:
    attempt = f.attempt(session)
    transition = f.request(session, attempt, "started", "learner")
    INBOX.fail(session, [transition.id], "database went away")
    session.refresh(transition)
    assert INBOX.replay(session, None) == [transition.id]
    assert (transition.state, transition.deliveries) == (TransitionState.pending, 0)
    apply.apply_transitions(session, [transition.id])
    assert transition.state is TransitionState.applied


def test_a_row_another_transaction_holds_is_left_to_it_uncounted(postgres_url: str) -> None:
    """A batch that drained a request along holds its row: a delivery of that request's own
    message does not wait for it, nor count itself."""
    engine = make_engine(postgres_url)
    with Session(engine) as session, session.begin():
        transition_id = f.request(session, f.attempt(session), "started", "learner").id
    with Session(engine) as holder, holder.begin():
        holder.execute(
            select(Transition).where(Transition.id == transition_id).with_for_update()
        ).one()
        with engine.connect() as other:
            began = time.monotonic()
            assert INBOX.count_delivery(other, [transition_id], limit=3) == []
            assert time.monotonic() - began < 2
            other.commit()
    with engine.connect() as connection:
        assert INBOX.count_delivery(connection, [transition_id], limit=3) == [transition_id]
        connection.commit()
    engine.dispose()
