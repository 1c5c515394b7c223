"""The batch writer: apply the pending requests of locked attempts, in one transaction.

docs/behaviour.md, "Applying a transition". The rules of each step are in proctoring/rules.py;
this module reads what they need, writes what they decide (status, history, follow-ups, held
reviews) and keeps one attempt's failure its own.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy.exc
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from proctoring import events, statuses, vendor_calls
from proctoring.attempts import attempts_for_cascades, lock_attempts
from proctoring.clock import utcnow
from proctoring.db import WakeupKind, wake
from proctoring.ledger import INBOX
from proctoring.models import (
    Attempt,
    AttemptHistory,
    Exam,
    Outbox,
    OutboxKind,
    Review,
    ReviewState,
    Transition,
    TransitionState,
)
from proctoring.rules import REVIEW_NOT_APPLIED, allowed_minutes, decide
from proctoring.statuses import Source, Status
from proctoring.transitions import review_key

log = logging.getLogger(__name__)


def apply_transitions(
    session: Session, transition_ids: Iterable[int], *, drain: int = 0
) -> list[Transition]:
    """Apply every pending request of the attempts these requests belong to.

    With ``drain``, also the attempts of up to that many other pending requests, oldest
    first: one task and one transaction then apply a whole backlog, and the messages for those
    requests find theirs done (they drain what waits then, with no ids of their own left).

    The named attempts are locked waiting for any holder; the drained ones with SKIP LOCKED,
    so a batch never waits for a batch over work it was not asked for. A drained attempt held
    by another transaction is mostly being applied by it, but not always: a follow-up that
    inserts a row naming the attempt (an e-mail's claim, an event) holds it too (a foreign
    key's KEY SHARE lock). A skipped attempt that FOR NO KEY UPDATE can still lock is held
    by such a one only, and no applier will apply its requests. So the first request a drain
    leaves out, held that way or beyond its batch, is woken after the commit: the API sends no
    message while an apply message waits in the queue (workers/publisher.py), and the drains
    carry a backlog on themselves. That message names the request and waits for the holder.
    An attempt held by a write that is not an applier's (archiving it, a vendor call recording
    its session) looks like an applier's: a request left out then waits for the sweep.

    A named request is never missed: its message is sent after its commit, an applier reads
    an attempt's pending requests after it has locked the attempt, and a request is recorded
    under a KEY SHARE lock that an applier's lock waits for.

    The caller's transaction holds the attempts' locks until it commits; follow-ups are outbox
    rows in the same transaction, published after the commit. Returns what was applied.
    """
    ids = sorted(set(transition_ids))
    attempt_ids: set[int] = set()
    if ids:
        rows = session.execute(
            select(Transition.id, Transition.attempt_id).where(
                Transition.id.in_(ids), Transition.state == TransitionState.pending
            )
        ).all()
        attempt_ids = {attempt_id for _, attempt_id in rows if attempt_id is not None}
        attempt_ids |= _attempts_for_cascades(
            session, [transition_id for transition_id, attempt_id in rows if attempt_id is None]
        )
    attempts = lock_attempts(session, sorted(attempt_ids))
    left_out = None
    if drain:
        oldest = _oldest_pending(session, drain + 1, exclude=attempt_ids)
        drained = lock_attempts(
            session, sorted({attempt for _, attempt in oldest[:drain]}), skip_locked=True
        )
        attempts += drained
        skipped = {attempt for _, attempt in oldest[:drain]} - {a.id for a in drained}
        covered = {a.id for a in drained} | (skipped - _held_only_by_others(session, skipped))
        left_out = _first_left_out(oldest, drain, covered)
    done = apply_pending(session, attempts, named=attempt_ids)
    if left_out is not None:
        wake(session, WakeupKind.apply, [left_out])
    return done


def _oldest_pending(session: Session, limit: int, exclude: set[int]) -> list[tuple[int, int]]:
    """The oldest ``limit`` pending requests but ``exclude``'s: (request id, attempt id)."""
    query = select(Transition.id, Transition.attempt_id).where(
        Transition.state == TransitionState.pending, Transition.attempt_id.is_not(None)
    )
    if exclude:
        query = query.where(Transition.attempt_id.not_in(exclude))
    rows = session.execute(query.order_by(Transition.received_at).limit(limit)).all()
    return [(transition_id, attempt_id) for transition_id, attempt_id in rows if attempt_id]


def _held_only_by_others(session: Session, attempt_ids: set[int]) -> set[int]:
    """Of attempts a drain skipped, those no applier holds: FOR NO KEY UPDATE does not
    conflict with the KEY SHARE lock of a transaction inserting a row that names the attempt
    (an e-mail's claim, an event), and does conflict with an applier's FOR UPDATE."""
    if not attempt_ids or session.get_bind().dialect.name != "postgresql":
        return set()
    return set(
        session.scalars(
            select(Attempt.id)
            .where(Attempt.id.in_(sorted(attempt_ids)))
            .with_for_update(skip_locked=True, key_share=True)
        )
    )


def _first_left_out(oldest: list[tuple[int, int]], drain: int, covered: set[int]) -> int | None:
    """The first of these requests no applier takes up (its attempt is not in ``covered``:
    this batch's, or held by another applier), or, when more were waiting than ``drain``, the
    one after them."""
    for transition_id, attempt_id in oldest[:drain]:
        if attempt_id not in covered:
            return transition_id
    return oldest[drain][0] if len(oldest) > drain else None


def _attempts_for_cascades(session: Session, transition_ids: Sequence[int]) -> set[int]:
    """Give cascades to never-attempted exams their attempts: the learner's, or new ones.

    The requests are locked first, so two workers given the same ones do this once.
    """
    if not transition_ids:
        return set()
    waiting = session.scalars(
        select(Transition)
        .where(Transition.id.in_(transition_ids), Transition.attempt_id.is_(None))
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    made = attempts_for_cascades(session, [(t.exam_id, t.user_id) for t in waiting])
    for transition in waiting:
        transition.attempt_id = made[(transition.exam_id, transition.user_id)]
    session.flush()
    return set(made.values())


_WHOLE_TRANSACTION = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
)


def apply_pending(
    session: Session, attempts: Sequence[Attempt], *, named: Collection[int] | None = None
) -> list[Transition]:
    """Apply the pending requests of these locked attempts, each attempt's oldest first.

    A handful of statements for the whole batch: the pending requests, the exams and the held
    reviews are read at once, and the writes go out in one flush, inside one savepoint.

    One attempt's failure is its own. When an attempt spoils the batch, the batch is rolled
    back to its savepoint and each attempt is applied again alone, in a savepoint of its own:
    the others are applied, and the one that fails again has its pending requests end
    ``failed`` with the reason (for an operator to replay) if it is one of ``named`` (the
    attempts the caller was asked to apply; all of them by default), or left pending for the
    task that names it when it was only drained along.
    """
    if not attempts:
        return []
    try:
        with _savepoint(session):
            return _apply_batch(session, attempts)
    except _WHOLE_TRANSACTION:
        raise
    except Exception as exc:
        log.warning("a batch of %d attempts failed (%s); applying each alone", len(attempts), exc)
    done: list[Transition] = []
    for attempt in attempts:
        attempt_id = session.identity_key(instance=attempt)[1][0]
        try:
            with _savepoint(session):
                done.extend(_apply_batch(session, [attempt]))
        except _WHOLE_TRANSACTION:
            raise
        except Exception as exc:
            if named is None or attempt_id in named:
                log.warning("attempt %s could not be applied: %s", attempt_id, exc)
                _fail_attempt(session, attempt_id, exc)
    return done


@contextmanager
def _savepoint(session: Session) -> Iterator[None]:
    """A savepoint whose wake-ups are forgotten with it when it is rolled back."""
    wakeups = session.info.setdefault("wakeups", [])
    before = len(wakeups)
    try:
        with session.begin_nested():
            yield
    except BaseException:
        del wakeups[before:]
        raise


def _fail_attempt(session: Session, attempt_id: int, exc: Exception) -> None:
    reason = str(exc).splitlines()[0] if str(exc) else ""
    pending = session.scalars(
        select(Transition.id).where(
            Transition.attempt_id == attempt_id, Transition.state == TransitionState.pending
        )
    ).all()
    INBOX.fail(session, pending, f"could not be applied: {type(exc).__name__}: {reason}"[:2000])


def _apply_batch(session: Session, attempts: Sequence[Attempt]) -> list[Transition]:
    by_id = {a.id: a for a in attempts}
    # The pending requests with their attempt's exam, in one query.
    pending = session.execute(
        select(Transition, Exam)
        .join(Attempt, Attempt.id == Transition.attempt_id)
        .join(Exam, Exam.id == Attempt.exam_id)
        .where(Transition.attempt_id.in_(by_id), Transition.state == TransitionState.pending)
        .order_by(Transition.attempt_id, Transition.id)
    ).all()
    if not pending:
        return []
    batch = _Batch(session, by_id)
    for transition, exam in pending:
        assert transition.attempt_id is not None
        batch.apply(by_id[transition.attempt_id], exam, transition)
    return batch.finish()


class _Batch:
    """The writes of one batch: applied in memory, flushed once, woken after."""

    def __init__(self, session: Session, attempt_ids: Iterable[int]) -> None:
        self.session = session
        self.attempt_ids = set(attempt_ids)
        self.done: list[Transition] = []
        self.outbox: list[Outbox] = []
        self.events: list[dict[str, Any]] = []  # rows for events.insert
        self._held: dict[int, list[Review]] | None = None

    def apply(self, attempt: Attempt, exam: Exam, transition: Transition) -> None:
        self.done.extend(_apply(self, attempt, exam, transition))

    def held_reviews(self, attempt: Attempt) -> list[Review]:
        """Reviews waiting for a submit, read once for the whole batch. None can appear
        meanwhile: recording a review waits for the attempt's lock, which the batch holds."""
        if self._held is None:
            self._held = {}
            for review in self.session.scalars(
                select(Review)
                .where(Review.attempt_id.in_(self.attempt_ids), Review.state == ReviewState.held)
                .order_by(Review.id)
            ):
                self._held.setdefault(review.attempt_id, []).append(review)
        return self._held.pop(attempt.id, [])

    def finish(self) -> list[Transition]:
        self.session.flush()
        for row in self.outbox:
            wake(self.session, row.kind, [row.id])
        events.insert(self.session, self.events)
        return self.done


def _apply(batch: _Batch, attempt: Attempt, exam: Exam, transition: Transition) -> list[Transition]:
    session = batch.session
    now = utcnow()
    current = attempt.status
    step = decide(attempt, exam, transition, now)
    transition.state = step.state
    transition.detail = step.detail
    transition.applied_at = now
    if attempt.archived_at is None:
        transition.from_status = current
    if step.state is TransitionState.noop:
        transition.result_status = current
        if step.detail == REVIEW_NOT_APPLIED:
            session.execute(
                update(Review)
                .where(Review.transition_id == transition.id)
                .values(state=ReviewState.stored)
            )
    if step.state is not TransitionState.applied:
        return [transition]

    result = step.result
    assert result is not None
    transition.result_status = result
    _write_status(attempt, exam, result, now, step.completed_at)
    session.add(
        AttemptHistory(
            attempt_id=attempt.id,
            from_status=current,
            to_status=result,
            transition_id=transition.id,
            at=now,
        )
    )
    _record_follow_ups(batch, attempt, transition, result)
    vendor_calls.status_applied(session, attempt, current, result)
    batch.events.extend(events.status_changed(attempt, exam, transition, current, result, now))
    done = [transition]
    if result is Status.submitted:
        done.extend(_release_held_reviews(batch, attempt, exam))
    return done


def _write_status(
    attempt: Attempt,
    exam: Exam,
    result: Status,
    now: dt.datetime,
    completed_at: dt.datetime | None,
) -> None:
    """Step 9 of applying: the status and its time stamps."""
    attempt.status = result
    if result is Status.started and attempt.started_at is None:
        attempt.started_at = now
        attempt.allowed_time_limit_mins = allowed_minutes(exam, now)
    elif result is Status.submitted:
        attempt.completed_at = completed_at or now


def _record_follow_ups(
    batch: _Batch, attempt: Attempt, transition: Transition, result: Status
) -> None:
    """Step 10: outbox rows in this transaction, published after it commits."""
    kinds: list[OutboxKind] = []
    if statuses.credit_value(result) is not None:
        kinds.append(OutboxKind.credit)
    if statuses.cascades_declines(result) and transition.source is not Source.cascade:
        if result is Status.declined:
            attempt.taking_as_proctored = False
            attempt.external_id = None
        kinds.append(OutboxKind.cascade)
    if (
        statuses.sends_email(result)
        and attempt.taking_as_proctored
        and not attempt.is_sample_attempt
    ):
        kinds.append(OutboxKind.email)
    if not kinds:
        return
    rows = [Outbox(kind=k, attempt_id=attempt.id, transition_id=transition.id) for k in kinds]
    batch.session.add_all(rows)
    batch.outbox.extend(rows)


def _release_held_reviews(batch: _Batch, attempt: Attempt, exam: Exam) -> list[Transition]:
    """Step 11: reviews that waited for the submit are applied right after it."""
    session = batch.session
    held = batch.held_reviews(attempt)
    done: list[Transition] = []
    for review in held:
        transition = Transition(
            attempt_id=attempt.id,
            exam_id=attempt.exam_id,
            user_id=attempt.user_id,
            to_status=review.outcome,
            source=Source.vendor,
            idempotency_key=review_key(review.provider, review.webhook_id),
            state=TransitionState.pending,
            received_at=utcnow(),
            deliveries=0,
        )
        session.add(transition)
        session.flush()
        review.state = ReviewState.applied
        review.transition_id = transition.id
        done.extend(_apply(batch, attempt, exam, transition))
    return done
