"""The outbox and the inbox as the pipeline sees them: claim, finish, sweep, replay."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select, update
from sqlalchemy.orm import Session

from proctoring.clock import utcnow
from proctoring.db import wake
from proctoring.models import Outbox, OutboxKind, OutboxState, Transition, TransitionState
from proctoring.transitions import APPLY


@dataclass
class FollowUpResult:
    """What a follow-up batch came to: the ids to try again later, and when."""

    done: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    retry_ids: list[int] = field(default_factory=list)
    retry_after: float | None = None

    def retry(self, outbox_id: int, after: float | None = None) -> None:
        self.retry_ids.append(outbox_id)
        if after is not None:
            self.retry_after = max(self.retry_after or 0.0, after)


def claim(session: Session, kind: OutboxKind, outbox_ids: Sequence[int]) -> list[Outbox]:
    """Lock the still-pending rows of this batch, oldest first.

    SKIP LOCKED: a row another worker holds is being handled there (a duplicate delivery of
    the same message, or the sweeper's re-publication); this batch leaves it alone.
    """
    if not outbox_ids:
        return []
    return list(
        session.scalars(
            select(Outbox)
            .where(
                Outbox.id.in_(sorted(set(outbox_ids))),
                Outbox.kind == kind,
                Outbox.state == OutboxState.pending,
            )
            .order_by(Outbox.id)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
    )


def finish(row: Outbox, state: OutboxState, detail: str | None = None) -> None:
    row.state = state
    row.detail = detail[:2000] if detail else None
    row.done_at = utcnow()


def count_delivery(
    executor: Session | Connection, outbox_ids: Sequence[int], limit: int
) -> list[int]:
    """As for transitions: count before the work, fail what keeps failing. Returns the rest."""
    if not outbox_ids:
        return []
    counted = executor.execute(
        update(Outbox)
        .where(Outbox.id.in_(outbox_ids), Outbox.state == OutboxState.pending)
        .values(deliveries=Outbox.deliveries + 1)
        .returning(Outbox.id, Outbox.deliveries)
    ).all()
    over = [i for i, deliveries in counted if deliveries > limit]
    if over:
        fail_outbox(
            executor,
            over,
            f"gave up after {limit} deliveries: it kept failing or killing its worker",
        )
    return sorted(i for i, deliveries in counted if deliveries <= limit)


def fail_outbox(executor: Session | Connection, outbox_ids: Sequence[int], detail: str) -> None:
    executor.execute(
        update(Outbox)
        .where(Outbox.id.in_(outbox_ids), Outbox.state == OutboxState.pending)
        .values(state=OutboxState.failed, detail=detail[:2000], done_at=utcnow())
    )


def sweep_inbox(session: Session, older_than: dt.timedelta, limit: int = 5000) -> int:
    """Publish again the requests still pending a while after they were received.

    This is what makes a crash between commit and publish, or a broker outage, lose nothing.
    A row is published again at most once per ``older_than``, so a backlog is not flooded.
    """
    now = utcnow()
    ids = list(
        session.scalars(
            select(Transition.id)
            .where(
                Transition.state == TransitionState.pending,
                func.coalesce(Transition.last_published_at, Transition.received_at)
                < now - older_than,
            )
            .order_by(Transition.id)
            .limit(limit)
        )
    )
    if ids:
        session.execute(
            update(Transition).where(Transition.id.in_(ids)).values(last_published_at=now)
        )
        wake(session, APPLY, ids)
    return len(ids)


def relay_outbox(session: Session, older_than: dt.timedelta, limit: int = 5000) -> int:
    """Publish again the follow-ups still pending a while after they were recorded."""
    now = utcnow()
    rows = session.execute(
        select(Outbox.id, Outbox.kind)
        .where(
            Outbox.state == OutboxState.pending,
            func.coalesce(Outbox.last_published_at, Outbox.created_at) < now - older_than,
        )
        .order_by(Outbox.id)
        .limit(limit)
    ).all()
    if rows:
        session.execute(
            update(Outbox)
            .where(Outbox.id.in_([row_id for row_id, _ in rows]))
            .values(last_published_at=now)
        )
        for row_id, kind in rows:
            wake(session, kind, [row_id])
    return len(rows)


def replay_outbox(session: Session, outbox_ids: Sequence[int] | None) -> list[int]:
    """Put failed follow-ups back; None means every failed one."""
    query = select(Outbox).where(Outbox.state == OutboxState.failed)
    if outbox_ids is not None:
        query = query.where(Outbox.id.in_(outbox_ids))
    rows = session.scalars(query.order_by(Outbox.id)).all()
    for row in rows:
        row.state = OutboxState.pending
        row.detail = None
        row.done_at = None
        row.deliveries = 0
        wake(session, row.kind, [row.id])
    return [row.id for row in rows]
