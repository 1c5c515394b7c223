"""The pipeline's books, kept the same way on the inbox (requests) and the outbox (follow-ups).

A ledger is a table of work recorded before it is published (docs/design.md, rule 1). A row is
pending until its work ends it. Each delivery of it is counted before the work, in a commit of
its own, so a row that keeps killing its worker ends failed, which Celery alone cannot do
after a lost worker. A failed row waits for an operator to replay it. The sweep publishes again
the rows still pending a while after they were recorded or last published: a crash between
commit and publish, or a broker outage, delays work and loses none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, SQLColumnExpression, func, literal, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from proctoring.clock import utcnow
from proctoring.db import WakeupKind, wake
from proctoring.models import Outbox, OutboxState, Transition, TransitionState

# What a request's wake-up is called (proctoring.db.Wakeup.kind): the task that applies it.
APPLY = WakeupKind.apply

Executor = Session | Connection


@dataclass(frozen=True, eq=False)
class Ledger:
    """One table of recorded work, and the columns the pipeline keeps its books in."""

    model: type[Transition] | type[Outbox]
    # A row is pending until its work ends it, and a failed one waits for a replay.
    states: type[TransitionState] | type[OutboxState]
    # When a row was recorded, and when its work ended it (done, applied or failed).
    recorded_at: SQLColumnExpression[dt.datetime]
    ended_at: SQLColumnExpression[dt.datetime | None]
    # What a row's wake-up is sent as: the same for every row of the table, or its own kind.
    wake_kind: SQLColumnExpression[Any]
    # What an operator reads a failed row as, if not as what it is woken as.
    label: SQLColumnExpression[Any] | None = None
    # The detail of a row given up after too many deliveries says what kept failing.
    work: str = "it"
    # Where a row retried by time waits for its next try; such a row is neither counted nor
    # published again before then.
    next_try_at: SQLColumnExpression[dt.datetime | None] | None = None
    # What else a replayed row starts afresh with, beyond its state, detail, end and count.
    afresh: Mapping[SQLColumnExpression[Any], Any] = field(default_factory=dict)

    @property
    def pending(self) -> TransitionState | OutboxState:
        return self.states.pending

    @property
    def failed(self) -> TransitionState | OutboxState:
        return self.states.failed

    def due(self) -> list[ColumnElement[bool]]:
        """Rows whose next try has come (or that were never tried); every row of a table
        that does not retry by time."""
        if self.next_try_at is None:
            return []
        return [or_(self.next_try_at.is_(None), self.next_try_at <= utcnow())]

    def count_delivery(self, executor: Executor, ids: Sequence[int], limit: int) -> list[int]:
        """Count one more delivery of each pending, due row; fail those delivered ``limit``
        times already. Returns the ids still worth working on.

        Runs in its own statement, committed before the work, so the count survives a worker
        that dies mid-task. A row not due yet is left alone, uncounted: its own next try
        brings it back. So is a row another transaction holds (SKIP LOCKED): a worker is
        applying or delivering it right now (a batch that drained it along), and waiting for
        that transaction would only find it done; should that transaction roll back, the
        sweep publishes the row again.
        """
        if not ids:
            return []
        model = self.model
        free = (
            select(model.id)
            .where(model.id.in_(ids), model.state == self.pending, *self.due())
            .with_for_update(skip_locked=True)
        )
        counted = executor.execute(
            update(model)
            .where(model.id.in_(free.scalar_subquery()))
            .values(deliveries=model.deliveries + 1)
            .returning(model.id, model.deliveries)
        ).all()
        over = [i for i, deliveries in counted if deliveries > limit]
        if over:
            self.fail(
                executor,
                over,
                f"gave up after {limit} deliveries: {self.work} kept failing or killing its worker",
            )
        return sorted(i for i, deliveries in counted if deliveries <= limit)

    def fail(self, executor: Executor, ids: Sequence[int], detail: str) -> None:
        """End these pending rows ``failed`` with the reason, for an operator to replay."""
        model = self.model
        executor.execute(
            update(model)
            .where(model.id.in_(ids), model.state == self.pending)
            .values(
                {model.state: self.failed, model.detail: detail[:2000], self.ended_at: utcnow()}
            )
        )

    def replay(self, session: Session, ids: Sequence[int] | None) -> list[int]:
        """Put failed rows back, as if just recorded; None means every failed one."""
        model = self.model
        query = update(model).where(model.state == self.failed)
        if ids is not None:
            query = query.where(model.id.in_(ids))
        fresh: dict[Any, Any] = {
            model.state: self.pending,
            model.detail: None,
            self.ended_at: None,
            model.deliveries: 0,
        }
        fresh.update(self.afresh)
        replayed = session.execute(query.values(fresh).returning(model.id, self.wake_kind)).all()
        for row_id, kind in sorted(replayed):
            wake(session, kind, [row_id])
        return sorted(row_id for row_id, _ in replayed)

    def sweep(self, session: Session, older_than: dt.timedelta, limit: int = 5000) -> int:
        """Publish again the rows still pending ``older_than`` after they were recorded or
        last published (and due, if retried by time). A row is published again at most once
        per ``older_than``, so a backlog is not flooded."""
        now = utcnow()
        model = self.model
        rows = session.execute(
            select(model.id, self.wake_kind)
            .where(
                model.state == self.pending,
                func.coalesce(model.last_published_at, self.recorded_at) < now - older_than,
                *self.due(),
            )
            .order_by(model.id)
            .limit(limit)
        ).all()
        if rows:
            session.execute(
                update(model)
                .where(model.id.in_([row_id for row_id, _ in rows]))
                .values(last_published_at=now)
            )
            for row_id, kind in rows:
                wake(session, kind, [row_id])
        return len(rows)

    def counts(self, session: Session) -> dict[str, int]:
        """How many rows are in each state."""
        model = self.model
        return {
            str(state): count
            for state, count in session.execute(
                select(model.state, func.count()).group_by(model.state)
            )
        }

    def oldest_pending(self, session: Session) -> dt.datetime | None:
        return session.scalar(
            select(func.min(self.recorded_at)).where(self.model.state == self.pending)
        )

    def failed_rows(
        self, session: Session, limit: int
    ) -> Sequence[tuple[str, int, int | None, str, dt.datetime | None]]:
        """The failed rows, oldest first: what they are, id, attempt, reason, when."""
        model = self.model
        rows = session.execute(
            select(
                self.wake_kind if self.label is None else self.label,
                model.id,
                model.attempt_id,
                model.detail,
                self.ended_at,
            )
            .where(model.state == self.failed)
            .order_by(model.id)
            .limit(limit)
        ).all()
        return [
            (str(label), row_id, attempt_id, detail or "", at)
            for label, row_id, attempt_id, detail, at in rows
        ]


# Transition requests, recorded by the API, a review, a time-out or a cascade; applied.
INBOX = Ledger(
    model=Transition,
    states=TransitionState,
    wake_kind=literal(APPLY),
    label=literal("transition"),
    recorded_at=Transition.received_at,
    ended_at=Transition.applied_at,
    work="applying it",
)

# Follow-ups of applied transitions (credit, e-mail, cascade), retried by time.
OUTBOX = Ledger(
    model=Outbox,
    states=OutboxState,
    wake_kind=Outbox.kind,
    recorded_at=Outbox.created_at,
    ended_at=Outbox.done_at,
    next_try_at=Outbox.next_try_at,
    afresh={Outbox.tries: 0, Outbox.retrying_since: None, Outbox.next_try_at: None},
)
