"""Transition requests: record them in the inbox, and find them again.

A request is recorded in the commit that answers its caller (docs/design.md, rule 1), and
woken after it; proctoring/apply.py applies it. Idempotency keys make a repeated request the
first one again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from proctoring.clock import utcnow
from proctoring.db import wake
from proctoring.errors import Conflict, NotFound
from proctoring.ledger import APPLY
from proctoring.models import KEY_LENGTH, Attempt, Transition, TransitionState
from proctoring.statuses import Source, Status


def scoped_key(actor_user_id: int | None, key: str | None) -> str | None:
    """The stored idempotency key of a learner's or staff's request; None when there is none.

    Keys are scoped to the caller, as payment APIs scope them to an account: two learners who
    both send "submit-1" make two requests, not a conflict. Without a key, every request is new.
    """
    if key is None:
        return None
    return f"user:{actor_user_id}:{key}"


def stored_key(key: str | None) -> str:
    """The key a request is stored with: its (scoped) key, or a fresh one of its own."""
    return key or f"auto:{uuid.uuid4()}"


def lock_attempt_for_request(session: Session, attempt_id: int) -> Attempt:
    """Hold the attempt against appliers, and read its latest committed status.

    FOR KEY SHARE lets many recorders in at once but waits for (and is waited on by) the
    applier's FOR UPDATE. A review is recorded under it: whether the review is held depends on
    the status, and an applier that releases held reviews cannot run meanwhile.
    """
    attempt = session.scalar(
        select(Attempt)
        .where(Attempt.id == attempt_id)
        .with_for_update(read=True, key_share=True)
        .execution_options(populate_existing=True)
    )
    if attempt is None or attempt.archived_at is not None:
        raise NotFound(f"attempt {attempt_id} does not exist")
    return attempt


def record_transition(
    session: Session,
    *,
    attempt_id: int,
    to_status: Status,
    source: Source,
    idempotency_key: str | None,
    actor_user_id: int | None = None,
    expired_at: dt.datetime | None = None,
) -> tuple[Transition, bool]:
    """Record a request in the inbox; returns it and whether it is new.

    The same (source, key) again returns the first request, or raises Conflict if it asked for
    something else. Without a key the request is new and nothing is looked up. The apply
    message is published after the commit.

    Order: the attempt is held with a KEY SHARE lock before the row takes its id, until the
    commit. The applier's FOR UPDATE waits for it, so an applier never reads an attempt's
    pending requests while one is being recorded: nothing received earlier can commit later
    than what an applier has seen. (The foreign-key check of the INSERT takes the same lock,
    but only after the row has drawn its id: a request drawing id 36 could then lose the race
    for the lock to an applier that already sees id 37, committed meanwhile.)
    """
    if idempotency_key is not None:
        existing = find_by_key(session, source, idempotency_key)
        if existing is not None:
            return _same_request(existing, attempt_id, to_status), False
    attempt = lock_attempt_for_request(session, attempt_id)
    transition = Transition(
        attempt_id=attempt.id,
        exam_id=attempt.exam_id,
        user_id=attempt.user_id,
        to_status=to_status,
        source=source,
        actor_user_id=actor_user_id,
        idempotency_key=stored_key(idempotency_key),
        expired_at=expired_at,
        state=TransitionState.pending,
        received_at=utcnow(),
        deliveries=0,
    )
    if idempotency_key is None:  # no key, no race on it: no savepoint either
        session.add(transition)
        session.flush()
        wake(session, APPLY, [transition.id])
        return transition, True
    try:
        with session.begin_nested():
            session.add(transition)
    except IntegrityError:
        # The same key raced us in another transaction, which has committed by now.
        existing = find_by_key(session, source, idempotency_key)
        if existing is None:
            raise
        return _same_request(existing, attempt_id, to_status), False
    wake(session, APPLY, [transition.id])
    return transition, True


def _same_request(existing: Transition, attempt_id: int, to_status: Status) -> Transition:
    if existing.attempt_id != attempt_id or existing.to_status != to_status:
        key = "webhook-id" if existing.source is Source.vendor else "Idempotency-Key"
        raise Conflict(
            f"this {key} was already used for a different request "
            f"(attempt {existing.attempt_id}, to_status {existing.to_status})"
        )
    return existing


def find_by_key(session: Session, source: Source, key: str) -> Transition | None:
    return session.scalar(
        select(Transition).where(Transition.source == source, Transition.idempotency_key == key)
    )


def get_transition(session: Session, transition_id: int) -> Transition:
    transition = session.get(Transition, transition_id)
    if transition is None:
        raise NotFound(f"transition {transition_id} does not exist")
    return transition


def transitions_of_attempt(session: Session, attempt_id: int) -> Sequence[Transition]:
    return session.scalars(
        select(Transition).where(Transition.attempt_id == attempt_id).order_by(Transition.id)
    ).all()


def review_key(provider: str, webhook_id: str) -> str:
    """The idempotency key of a vendor's request: its webhook id, within its provider.

    A webhook id may be as long as the key column itself: a key that would not fit is kept
    as a digest of itself, so any id the API accepts has its key.
    """
    key = f"{provider}:{webhook_id}"
    if len(key) <= KEY_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
