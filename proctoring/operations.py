"""What operators ask of the store: what is pending, what failed, and putting it back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config import get_settings
from proctoring.clock import utcnow
from proctoring.ledger import INBOX, OUTBOX
from proctoring.models import Outbox, OutboxKind, OutboxState


@dataclass(frozen=True)
class Backlog:
    pending_transitions: int
    failed_transitions: int
    oldest_pending_seconds: float | None
    pending_follow_ups: int
    failed_follow_ups: int
    outbox_lag_seconds: float | None
    transitions_by_state: dict[str, int]
    # Per event receiver: delivered, pending, failed, and the oldest pending event's age.
    events: dict[str, dict[str, float | None]]


def _age(oldest: dt.datetime | None, now: dt.datetime) -> float | None:
    return None if oldest is None else max(0.0, (now - oldest).total_seconds())


def backlog(session: Session) -> Backlog:
    now = utcnow()
    inbox, outbox = INBOX.counts(session), OUTBOX.counts(session)
    return Backlog(
        pending_transitions=inbox.get(INBOX.pending, 0),
        failed_transitions=inbox.get(INBOX.failed, 0),
        oldest_pending_seconds=_age(INBOX.oldest_pending(session), now),
        pending_follow_ups=outbox.get(OUTBOX.pending, 0),
        failed_follow_ups=outbox.get(OUTBOX.failed, 0),
        outbox_lag_seconds=_age(OUTBOX.oldest_pending(session), now),
        transitions_by_state=inbox,
        events=event_backlog(session, now),
    )


def event_backlog(session: Session, now: dt.datetime) -> dict[str, dict[str, float | None]]:
    """Each receiver's events by state, configured receivers included when they have none."""
    found: dict[str, dict[str, float | None]] = {
        receiver.name: _no_events() for receiver in get_settings().event_webhooks
    }
    for receiver, state, count, oldest in session.execute(
        select(Outbox.receiver, Outbox.state, func.count(), func.min(Outbox.created_at))
        .where(Outbox.kind == OutboxKind.event)
        .group_by(Outbox.receiver, Outbox.state)
    ):
        figures = found.setdefault(receiver or "", _no_events())
        figures[_EVENT_STATES[state]] = count
        if state is OutboxState.pending:
            figures["oldest_pending_seconds"] = _age(oldest, now)
    return dict(sorted(found.items()))


_EVENT_STATES = {
    OutboxState.done: "delivered",
    OutboxState.pending: "pending",
    OutboxState.failed: "failed",
}


def _no_events() -> dict[str, float | None]:
    return {"delivered": 0, "pending": 0, "failed": 0, "oldest_pending_seconds": None}


@dataclass(frozen=True)
class FailedItem:
    kind: str  # "transition" or an outbox kind
    id: int
    attempt_id: int | None
    detail: str
    at: dt.datetime | None


def failed_items(session: Session, limit: int = 1000) -> list[FailedItem]:
    return [
        FailedItem(*row) for ledger in (INBOX, OUTBOX) for row in ledger.failed_rows(session, limit)
    ]


def replay(
    session: Session,
    transition_ids: Sequence[int] | None = None,
    outbox_ids: Sequence[int] | None = None,
    *,
    everything: bool = False,
) -> tuple[list[int], list[int]]:
    """Put failed requests and follow-ups back; returns the ids replayed of each."""
    if everything:
        return INBOX.replay(session, None), OUTBOX.replay(session, None)
    return INBOX.replay(session, transition_ids or []), OUTBOX.replay(session, outbox_ids or [])
