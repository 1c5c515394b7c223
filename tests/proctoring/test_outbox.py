"""The sweeper and the operators' view: nothing pending is forgotten, failures can come back."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update
from sqlalchemy.orm import Session

from proctoring import operations, outbox, transitions
from proctoring.clock import utcnow
from proctoring.db import pending_wakeups
from proctoring.models import Outbox, OutboxState, Transition
from tests import factories as f


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

    count = outbox.sweep_inbox(session, dt.timedelta(seconds=5)) + outbox.relay_outbox(
        session, dt.timedelta(seconds=5)
    )
    woken = {(w.kind, w.id) for w in pending_wakeups(session)}
    assert ("apply", pending_before.id) in woken
    assert ("apply", request.id) not in woken
    assert ("apply", done.id) not in woken
    assert {"credit", "cascade"} <= {kind for kind, _ in woken}
    assert count == len(woken)
    session.info.pop("wakeups", None)
    assert outbox.sweep_inbox(session, dt.timedelta(seconds=5)) == 0  # published just now
    assert outbox.relay_outbox(session, dt.timedelta(seconds=5)) == 0


def test_backlog_and_failures_are_visible_and_replayable(session: Session) -> None:
    attempt = f.attempt(session)
    t = f.request(session, attempt, "started", "learner")
    decline = f.move(session, f.attempt(session), "declined", "learner")
    transitions.fail_transitions(session, [t.id], "worker kept dying")
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
    assert outbox.count_delivery(session, [row.id], limit=1) == [row.id]
    assert outbox.count_delivery(session, [row.id], limit=1) == []
    session.flush()
    session.refresh(row)
    assert row.state is OutboxState.failed
