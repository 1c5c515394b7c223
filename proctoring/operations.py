"""What operators ask of the store: what is pending, what failed, and putting it back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from proctoring.clock import utcnow
from proctoring.models import Outbox, OutboxState, Transition, TransitionState
from proctoring.outbox import replay_outbox
from proctoring.transitions import replay_transitions


@dataclass(frozen=True)
class Backlog:
    pending_transitions: int
    failed_transitions: int
    oldest_pending_seconds: float | None
    pending_follow_ups: int
    failed_follow_ups: int
    outbox_lag_seconds: float | None
    transitions_by_state: dict[str, int]


def _age(oldest: dt.datetime | None, now: dt.datetime) -> float | None:
    return None if oldest is None else max(0.0, (now - oldest).total_seconds())


def backlog(session: Session) -> Backlog:
    now = utcnow()
    by_state = {
        str(state): count
        for state, count in session.execute(
            select(Transition.state, func.count()).group_by(Transition.state)
        )
    }
    oldest = session.scalar(
        select(func.min(Transition.received_at)).where(Transition.state == TransitionState.pending)
    )
    outbox = dict(session.execute(select(Outbox.state, func.count()).group_by(Outbox.state)).all())
    oldest_follow_up = session.scalar(
        select(func.min(Outbox.created_at)).where(Outbox.state == OutboxState.pending)
    )
    return Backlog(
        pending_transitions=by_state.get(TransitionState.pending, 0),
        failed_transitions=by_state.get(TransitionState.failed, 0),
        oldest_pending_seconds=_age(oldest, now),
        pending_follow_ups=outbox.get(OutboxState.pending, 0),
        failed_follow_ups=outbox.get(OutboxState.failed, 0),
        outbox_lag_seconds=_age(oldest_follow_up, now),
        transitions_by_state=by_state,
    )


@dataclass(frozen=True)
class FailedItem:
    kind: str  # "transition" or an outbox kind
    id: int
    attempt_id: int | None
    detail: str
    at: dt.datetime | None


def failed_items(session: Session, limit: int = 1000) -> list[FailedItem]:
    items = [
        FailedItem("transition", t.id, t.attempt_id, t.detail or "", t.applied_at)
        for t in session.scalars(
            select(Transition)
            .where(Transition.state == TransitionState.failed)
            .order_by(Transition.id)
            .limit(limit)
        )
    ]
    items += [
        FailedItem(str(o.kind), o.id, o.attempt_id, o.detail or "", o.done_at)
        for o in session.scalars(
            select(Outbox)
            .where(Outbox.state == OutboxState.failed)
            .order_by(Outbox.id)
            .limit(limit)
        )
    ]
    return items


def replay(
    session: Session,
    transition_ids: Sequence[int] | None = None,
    outbox_ids: Sequence[int] | None = None,
    *,
    everything: bool = False,
) -> tuple[list[int], list[int]]:
    """Put failed requests and follow-ups back; returns the ids replayed of each."""
    if everything:
        return replay_transitions(session, None), replay_outbox(session, None)
    return (
        replay_transitions(session, transition_ids or []),
        replay_outbox(session, outbox_ids or []),
    )
